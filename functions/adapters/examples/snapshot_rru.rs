//! Read units a handled message spends on its aggregate's history, against the loan's age.
//!
//! Grows one new loan (created, approved, funded, then small payments) in the event table
//! and, when it reaches 10, 100, 1,000 and 5,000 events (`RRU_CHECKPOINTS` overrides the
//! ages), reads its history the way the runner does for the message at that sequence
//! (`history_upto`, the real read path: one query from the sequence backwards to the latest
//! snapshot), printing the read units DynamoDB reports (ReturnConsumedCapacity=TOTAL,
//! strongly consistent), once with snapshots and once ignoring them (another fold
//! version), with the size of the snapshot the read met.
//!
//! The history is written directly, `SNAPSHOT_EVERY` (default 10) events per
//! BatchWriteItem with their eventId guards and, at each multiple of `SNAPSHOT_EVERY`,
//! the snapshot item the store's append writes (the same core fold, stored form and item
//! layout): thousands of transactional appends take too long on a shared emulator, and
//! only the read is measured. The table needs only the event table's key (`pk` S, `sk` N):
//! one without a stream or indexes spares the emulator.
//!
//! Past `RRU_WHOLE_UPTO` events (default 1,000) only what the read at each checkpoint
//! meets is written: the events and snapshots of its last `2 * SNAPSHOT_EVERY + 2`
//! sequences (the read's one page holds the tail, the snapshot before it and an event
//! behind that); the rest is folded in memory only. The stream then has gaps, so the
//! "no snapshots" read is made only while the stream is whole.
//!
//! ```sh
//! . localstack/env.sh
//! EVENTS_TABLE=h10-events cargo run -p event-adapters --example snapshot_rru
//! ```

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::Utc;
use event_adapters::config::Clients;
use event_adapters::store::layout::{self, Item};
use event_adapters::store::{DynamoStore, EventStore, SnapshotPolicy, Upto};
use lending_events::envelope::{StreamId, WriteContext};
use lending_events::state::{Folded, FOLD_VERSION};
use lending_events::NewEvent;
use serde_json::{json, Value};

/// The loan ages measured (`RRU_CHECKPOINTS`, comma-separated, overrides them).
const CHECKPOINTS: [u64; 4] = [10, 100, 1_000, 5_000];

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
    let every: u64 = std::env::var("SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(10);
    let whole_upto: u64 = std::env::var("RRU_WHOLE_UPTO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let clients = Clients::from_env().await;
    let ddb = clients.dynamodb.clone();
    let tenant = format!("rru-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let loan = format!("L-{}", uuid::Uuid::new_v4().simple());
    let with_snapshots =
        DynamoStore::new(clients.dynamodb.clone(), &table).with_snapshots(SnapshotPolicy {
            every,
            fold_version: FOLD_VERSION,
        });
    let without = DynamoStore::new(clients.dynamodb.clone(), &table).with_snapshots(
        // Reads every event, 1,000 a page (the page size follows `every`; it writes nothing).
        SnapshotPolicy {
            every: 1000,
            fold_version: u32::MAX,
        },
    );
    let stream = StreamId {
        tenant_id: &tenant,
        aggregate_type: "Loan",
        aggregate_id: &loan,
    };
    println!(
        "| loan age (events) | RRU, snapshots every {every} | RRU, no snapshots | snapshot read: stored bytes (deflated) / JSON bytes |"
    );
    println!("|---|---|---|---|");
    let mut state = Folded::empty("Loan").expect("loans are snapshotted");
    let mut pending = loan_opening(&loan);
    let (mut head, mut payment) = (0u64, 0u64);
    // Whether every event so far is in the table (the "no snapshots" read needs them all).
    let mut whole = true;
    for checkpoint in checkpoints {
        // The sequences written for this checkpoint's read: all of them while the stream
        // is kept whole, else only those the read's page reaches.
        let written_from = if checkpoint <= whole_upto {
            1
        } else {
            checkpoint.saturating_sub(2 * every + 1)
        };
        while head < checkpoint {
            let want = (checkpoint - head).min(every - head % every) as usize;
            while pending.len() < want {
                pending.push(payment_received(&loan, payment));
                payment += 1;
            }
            let batch: Vec<Value> = pending.drain(..want.min(pending.len())).collect();
            let now = Utc::now();
            let ctx = WriteContext::client(&tenant, "rru-bench", now);
            let mut items: Vec<Item> = Vec::new();
            let mut last = None;
            for raw in &batch {
                let new = NewEvent::from_json(raw, &ctx, &mut uuid::Uuid::new_v4)?;
                head += 1;
                let e = new.clone().into_envelope(head, now);
                if head >= written_from {
                    items.push(layout::event_item(&e, serde_json::to_string(&e)?));
                    items.push(layout::guard_item(&e, &new.fingerprint));
                } else {
                    whole = false;
                }
                state.apply(&lending_events::upcast::upcast(e.clone()));
                last = Some(e);
            }
            if let Some(e) = last.filter(|e| e.sequence % every == 0 && e.sequence >= written_from)
            {
                let json = serde_json::to_string(&state)?;
                items.push(layout::snapshot_item(
                    &layout::stream_pk(&stream),
                    e.sequence,
                    &e.recorded_at,
                    FOLD_VERSION,
                    layout::deflate_state(&json),
                ));
            }
            write_all(&ddb, &table, items).await?;
            if head % 500 == 0 {
                eprintln!("{head} events folded");
            }
        }
        let mut units = Vec::new();
        let mut size = None;
        let stores = if whole {
            vec![&with_snapshots, &without]
        } else {
            vec![&with_snapshots]
        };
        for store in stores {
            let before = store.history_read_units();
            let history = store.history_upto(stream, Upto::Sequence(head)).await?;
            assert_eq!(
                history.tail.last().map(|e| e.sequence),
                Some(head),
                "the read reaches the message's event"
            );
            units.push(store.history_read_units() - before);
            if let Some(s) = history.snapshot {
                // The same state stored again gives the bytes the table holds.
                let json = serde_json::to_string(&s.state)?;
                size = Some((layout::deflate_state(&json).len(), json.len()));
            }
        }
        let size = match size {
            Some((stored, json)) => format!("{stored} / {json}"),
            None => "none".into(),
        };
        let without_units = units
            .get(1)
            .map_or("not measured".to_string(), |u| u.to_string());
        println!("| {checkpoint} | {} | {without_units} | {size} |", units[0]);
    }
    Ok(())
}

/// BatchWriteItem in chunks of 25, retrying what DynamoDB leaves unprocessed.
async fn write_all(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> Result<(), Box<dyn std::error::Error>> {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, _>>()?;
        for attempt in 1..=60 {
            let out = match ddb
                .batch_write_item()
                .request_items(table, requests.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if attempt < 60 => {
                    eprintln!("retrying a batch write: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            requests = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
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
