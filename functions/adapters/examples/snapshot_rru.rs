//! Read units a handled message spends on its aggregate's history, against the loan's age.
//!
//! For one new loan per mode (snapshots every 50 events, and none), appends a loan's events
//! to the event table (created, approved, funded, then payments, 25 per append) and, when
//! the loan reaches 10, 100, 1,000 and 5,000 events, reads its history the way the runner
//! does for a message at that sequence (`history_upto`), printing the read units DynamoDB
//! reports (ReturnConsumedCapacity=TOTAL, strongly consistent).
//!
//! ```sh
//! . localstack/env.sh
//! EVENTS_TABLE=h10-events cargo run -p event-adapters --example snapshot_rru
//! ```

use chrono::Utc;
use event_adapters::config::Clients;
use event_adapters::store::{DynamoStore, EventStore, SnapshotPolicy, Upto};
use lending_events::envelope::WriteContext;
use lending_events::NewEvent;
use serde_json::{json, Value};

const CHECKPOINTS: [u64; 4] = [10, 100, 1_000, 5_000];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = std::env::var("EVENTS_TABLE").unwrap_or_else(|_| "lendingos-events".into());
    let clients = Clients::from_env().await;
    let tenant = format!("rru-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    println!("| snapshots | RRU at event 10 | 100 | 1,000 | 5,000 | 5,000 / 10 |");
    println!("|---|---|---|---|---|---|");
    for every in [50u64, 0] {
        let store =
            DynamoStore::new(clients.dynamodb.clone(), &table).with_snapshots(SnapshotPolicy {
                every,
                ..SnapshotPolicy::default()
            });
        let loan = format!("L-{}", uuid::Uuid::new_v4().simple());
        let mut units = Vec::new();
        let mut head = 0u64;
        let mut payment = 0u64;
        let mut pending = loan_opening(&loan);
        for checkpoint in CHECKPOINTS {
            while head < checkpoint {
                while pending.len() < (checkpoint - head).min(25) as usize {
                    pending.push(payment_received(&loan, payment));
                    payment += 1;
                }
                let batch: Vec<Value> = std::mem::take(&mut pending);
                let now = Utc::now();
                let ctx = WriteContext::client(&tenant, "rru-bench", now);
                let events = batch
                    .iter()
                    .map(|raw| NewEvent::from_json(raw, &ctx, &mut uuid::Uuid::new_v4))
                    .collect::<Result<Vec<_>, _>>()?;
                head += events.len() as u64;
                append_retrying(&store, events, now).await?;
            }
            let stream = lending_events::envelope::StreamId {
                tenant_id: &tenant,
                aggregate_type: "Loan",
                aggregate_id: &loan,
            };
            let before = store.history_read_units();
            let history = store.history_upto(stream, Upto::Sequence(head)).await?;
            assert_eq!(
                history.tail.last().map(|e| e.sequence),
                Some(head),
                "the read reaches the message's event"
            );
            units.push(store.history_read_units() - before);
        }
        let label = if every == 0 {
            "none".to_string()
        } else {
            format!("every {every}")
        };
        println!(
            "| {label} | {} | {} | {} | {} | {:.1}x |",
            units[0],
            units[1],
            units[2],
            units[3],
            units[3] / units[0]
        );
    }
    Ok(())
}

/// Append, retrying a timed-out attempt (a busy emulator); the event ids are ours and new,
/// so an eventId conflict on a retry means the timed-out attempt stored them.
async fn append_retrying(
    store: &DynamoStore,
    events: Vec<NewEvent>,
    now: chrono::DateTime<Utc>,
) -> Result<(), event_adapters::error::AdapterError> {
    use event_adapters::error::AdapterError;
    for attempt in 1..=5 {
        match store.append(events.clone(), now).await {
            Ok(_) => return Ok(()),
            Err(AdapterError::EventIdConflict(_)) if attempt > 1 => return Ok(()),
            Err(AdapterError::Transient(e)) if attempt < 5 => {
                eprintln!("retrying a busy append: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn loan_opening(loan: &str) -> Vec<Value> {
    vec![
        json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "borrowerId": "B-1", "amount": "300000.00",
                "interestRate": "6.5", "termMonths": 360, "amortization": "amortized",
                "paymentFrequency": "monthly"}}),
        json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "approvedBy": "U-1", "approvedAt": "2026-01-30T12:00:00Z"}}),
        json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"loanId": loan, "fundedAmount": "300000.00", "fundedAt": "2026-01-31T09:00:00Z"}}),
    ]
}

/// A small payment: the loan stays open for thousands of them.
fn payment_received(loan: &str, k: u64) -> Value {
    let on = chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap() + chrono::Days::new(k / 4);
    json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": format!("P{k}"), "loanId": loan, "amount": "10.00",
            "method": "ACH", "receivedAt": format!("{on}T12:00:00Z")}})
}
