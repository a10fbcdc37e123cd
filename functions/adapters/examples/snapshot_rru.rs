//! Read units a handled message spends on its aggregate's history, against the loan's age.
//!
//! For one new loan per mode (snapshots every 10 events, every 50, and none), grown side by
//! side, appends a loan's events to the event table (created, approved, funded, then
//! payments, 25 per append) and, when the loans reach 10, 100, 1,000 and 5,000 events
//! (`RRU_CHECKPOINTS` overrides the ages), reads each history the way the runner does for a
//! message at that sequence (`history_upto`), printing the read units DynamoDB reports
//! (ReturnConsumedCapacity=TOTAL, strongly consistent), one row per age as it is reached,
//! with the size of the snapshot that read met (as stored: deflated JSON; and its JSON).
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

/// The loan ages measured (`RRU_CHECKPOINTS`, comma-separated, overrides them).
const CHECKPOINTS: [u64; 4] = [10, 100, 1_000, 5_000];

/// One loan grown under one snapshot policy.
struct Aged {
    store: DynamoStore,
    loan: String,
    head: u64,
    payment: u64,
    pending: Vec<Value>,
}

impl Aged {
    /// Append until the loan has `checkpoint` events, then read its history the way the
    /// runner does for the message at that sequence: the read units it cost.
    async fn read_units_at(
        &mut self,
        tenant: &str,
        checkpoint: u64,
    ) -> Result<(f64, Option<(usize, usize)>), Box<dyn std::error::Error>> {
        while self.head < checkpoint {
            while self.pending.len() < (checkpoint - self.head).min(25) as usize {
                self.pending
                    .push(payment_received(&self.loan, self.payment));
                self.payment += 1;
            }
            let batch: Vec<Value> = std::mem::take(&mut self.pending);
            let now = Utc::now();
            let ctx = WriteContext::client(tenant, "rru-bench", now);
            let events = batch
                .iter()
                .map(|raw| NewEvent::from_json(raw, &ctx, &mut uuid::Uuid::new_v4))
                .collect::<Result<Vec<_>, _>>()?;
            self.head += events.len() as u64;
            append_retrying(&self.store, events, now).await?;
        }
        let stream = lending_events::envelope::StreamId {
            tenant_id: tenant,
            aggregate_type: "Loan",
            aggregate_id: &self.loan,
        };
        let before = self.store.history_read_units();
        let history = self
            .store
            .history_upto(stream, Upto::Sequence(self.head))
            .await?;
        assert_eq!(
            history.tail.last().map(|e| e.sequence),
            Some(self.head),
            "the read reaches the message's event"
        );
        let units = self.store.history_read_units() - before;
        // The snapshot as stored (its stored form is what the store wrote: the same state
        // stored again gives the same bytes).
        let size = history.snapshot.map(|s| {
            let json = serde_json::to_string(&s.state).unwrap_or_default();
            (
                event_adapters::store::layout::deflate_state(&json).len(),
                json.len(),
            )
        });
        Ok((units, size))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = std::env::var("EVENTS_TABLE").unwrap_or_else(|_| "lendingos-events".into());
    let checkpoints: Vec<u64> = match std::env::var("RRU_CHECKPOINTS") {
        Ok(v) => v
            .split(',')
            .map(|c| c.trim().parse())
            .collect::<Result<_, _>>()?,
        Err(_) => CHECKPOINTS.to_vec(),
    };
    let clients = Clients::from_env().await;
    let tenant = format!("rru-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // Two loans grown side by side, one row per age as it is reached (a slow emulator
    // still yields the first rows).
    let mut loans: Vec<Aged> = [10u64, 50, 0]
        .into_iter()
        .map(|every| {
            let loan = format!("L-{}", uuid::Uuid::new_v4().simple());
            Aged {
                store: DynamoStore::new(clients.dynamodb.clone(), &table).with_snapshots(
                    SnapshotPolicy {
                        every,
                        ..SnapshotPolicy::default()
                    },
                ),
                pending: loan_opening(&loan),
                loan,
                head: 0,
                payment: 0,
            }
        })
        .collect();
    println!(
        "| loan age (events) | RRU, snapshots every 10 | RRU, snapshots every 50 | RRU, no snapshots | snapshot read (every 10): stored bytes / JSON bytes |"
    );
    println!("|---|---|---|---|---|");
    for checkpoint in checkpoints {
        let mut units = Vec::new();
        let mut sizes = Vec::new();
        for aged in &mut loans {
            let (u, size) = aged.read_units_at(&tenant, checkpoint).await?;
            units.push(u);
            sizes.push(size);
        }
        let size = match sizes[0] {
            Some((stored, json)) => format!("{stored} / {json}"),
            None => "none".into(),
        };
        println!(
            "| {checkpoint} | {} | {} | {} | {size} |",
            units[0], units[1], units[2]
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
