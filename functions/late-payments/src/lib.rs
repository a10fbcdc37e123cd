//! The late-payment job: for every funded loan, `Payment.Late` once per installment due
//! before the as-of date and still unpaid (the rule is the core's, [`lending_events::late`]).
//!
//! # Finding the funded loans
//! - For one tenant: a Query of the `byType` index (`typeKey = "<tenant>#Loan.Funded"`),
//!   reading only that tenant's funding events.
//! - For all tenants (the daily run): a Scan of the `byType` index filtered on the type
//!   part of `typeKey`. The index holds keys only, of event items only (not the eventId
//!   guards or processing records), but a Scan still reads, and pays for, every entry:
//!   an eventually consistent Scan costs 0.5 read unit per 4 KB, so (index size / 4 KB) / 2
//!   read units per run. An entry is its keys (pk, sk, typeKey, recordedAt), ~150 B: 10
//!   million entries are ~1.5 GB, ~190,000 RRU, about $0.02 a day on demand ($0.125 per
//!   million RRU; the README gives the same figure). Fine for a daily job; when it
//!   is not, keep a per-day index of funded loans (no new table needed: a sparse attribute
//!   on the Loan.Funded item and a GSI on it) or give the job its tenant list.
//!
//! Then one Query per loan (its history), at most [`CONCURRENCY`] loans at a time.
//!
//! # Never twice
//! Each `Payment.Late` has a name-based eventId per (tenant, loan, schedule, installment):
//! a re-run (or two runs racing) hits the store's eventId guard, and both "already stored"
//! and "eventId conflict" (same id, another as-of date) count as done. A later run also
//! skips installments already reported in the loan's history.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use event_adapters::config::{Clients, Config};
use event_adapters::error::{classify, AdapterError};
use event_adapters::store::layout::{
    aggregate_id_in, attr, index, split_type_key, type_key, type_key_suffix,
};
use event_adapters::store::{Appended, DynamoStore, EventStore};
use lending_events::envelope::StreamId;
use lending_events::late::late_events;
use lending_events::upcast::upcast;
use serde::Serialize;
use serde_json::Value;

/// Loans processed at once.
pub const CONCURRENCY: usize = 8;

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub as_of: String,
    pub tenant: Option<String>,
    /// Funded loans looked at.
    pub loans: usize,
    /// Payment.Late events stored by this run.
    pub emitted: usize,
    /// Found already stored (a re-run or a concurrent run).
    pub already_stored: usize,
    pub errors: Vec<String>,
}

#[derive(Clone)]
pub struct Job {
    store: DynamoStore,
    table: String,
}

impl Job {
    pub fn new(clients: &Clients, table: &str) -> Job {
        Job {
            store: DynamoStore::new(clients.dynamodb.clone(), table),
            table: table.to_string(),
        }
    }

    /// (tenant, loanId) of every funded loan, of one tenant or of all.
    pub async fn funded_loans(
        &self,
        tenant: Option<&str>,
    ) -> Result<BTreeSet<(String, String)>, AdapterError> {
        let ddb = self.store.client();
        let mut out = BTreeSet::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        loop {
            let (items, next) = match tenant {
                Some(t) => {
                    let r = ddb
                        .query()
                        .table_name(&self.table)
                        .index_name(index::BY_TYPE)
                        .key_condition_expression("typeKey = :k")
                        .expression_attribute_values(
                            ":k",
                            AttributeValue::S(type_key(t, "Loan.Funded")),
                        )
                        .projection_expression("pk, typeKey")
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| classify("Query(byType)", e))?;
                    (r.items().to_vec(), r.last_evaluated_key().cloned())
                }
                None => {
                    let r = ddb
                        .scan()
                        .table_name(&self.table)
                        .index_name(index::BY_TYPE)
                        // The index holds keys only: typeKey is `<tenant>#<type>`; the
                        // exact type is checked below.
                        .filter_expression("contains(typeKey, :t)")
                        .expression_attribute_values(
                            ":t",
                            AttributeValue::S(type_key_suffix("Loan.Funded")),
                        )
                        .projection_expression("pk, typeKey")
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| classify("Scan(byType)", e))?;
                    (r.items().to_vec(), r.last_evaluated_key().cloned())
                }
            };
            for item in &items {
                let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
                let Some((t, event_type)) = s(attr::TYPE_KEY).and_then(|k| split_type_key(k))
                else {
                    continue;
                };
                if event_type != "Loan.Funded" {
                    continue;
                }
                if let Some(loan) = s(attr::PK).and_then(|pk| aggregate_id_in(pk, t, "Loan")) {
                    out.insert((t.to_string(), loan.to_string()));
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// Run the job for `as_of`, for one tenant or all.
    pub async fn run(
        &self,
        as_of: NaiveDate,
        tenant: Option<&str>,
    ) -> Result<Report, AdapterError> {
        let loans = self.funded_loans(tenant).await?;
        let mut report = Report {
            as_of: as_of.to_string(),
            tenant: tenant.map(str::to_string),
            loans: loans.len(),
            ..Report::default()
        };
        let queue = Arc::new(tokio::sync::Mutex::new(loans.into_iter()));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            let (job, queue) = (self.clone(), queue.clone());
            workers.spawn(async move {
                let mut part = Report::default();
                loop {
                    let next = queue.lock().await.next();
                    let Some((tenant, loan)) = next else {
                        return part;
                    };
                    if let Err(e) = job.loan(&tenant, &loan, as_of, &mut part).await {
                        part.errors.push(format!("{tenant}/{loan}: {e}"));
                    }
                }
            });
        }
        while let Some(part) = workers.join_next().await {
            let part = part.map_err(|e| AdapterError::Config(format!("worker failed: {e}")))?;
            report.emitted += part.emitted;
            report.already_stored += part.already_stored;
            report.errors.extend(part.errors);
        }
        tracing::info!(as_of = %as_of, loans = report.loans, emitted = report.emitted,
            already_stored = report.already_stored, errors = report.errors.len(), "late-payment run");
        Ok(report)
    }

    async fn loan(
        &self,
        tenant: &str,
        loan: &str,
        as_of: NaiveDate,
        report: &mut Report,
    ) -> Result<(), AdapterError> {
        let stream = StreamId {
            tenant_id: tenant,
            aggregate_type: "Loan",
            aggregate_id: loan,
        };
        let history: Vec<_> = self
            .store
            .history(stream)
            .await?
            .into_iter()
            .map(upcast)
            .collect();
        let now = Utc::now();
        // One append per event: an installment reported by a concurrent run must not
        // hold back the others.
        for e in late_events(&history, as_of, now)? {
            let (id, installment) = (e.event_id, e.payload["installment"].clone());
            match self.store.append(vec![e], now).await {
                Ok(Appended::Stored(_)) => {
                    report.emitted += 1;
                    tracing::info!(%tenant, %loan, %installment, event_id = %id, "Payment.Late");
                }
                Ok(Appended::AlreadyStored(_)) | Err(AdapterError::EventIdConflict(_)) => {
                    report.already_stored += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The as-of date and tenant of an invocation: `asOf` (YYYY-MM-DD), else the date of an
/// EventBridge event's `time`, else `today`; `tenant` when given.
pub fn parse_input(input: &Value, today: NaiveDate) -> Result<(NaiveDate, Option<String>), String> {
    let as_of = match (input.get("asOf"), input.get("time")) {
        (Some(Value::String(d)), _) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("asOf {d:?} is not a date YYYY-MM-DD"))?,
        (_, Some(Value::String(t))) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| format!("time {t:?} is not an RFC 3339 timestamp"))?
            .with_timezone(&Utc)
            .date_naive(),
        _ => today,
    };
    let tenant = input
        .get("tenant")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((as_of, tenant))
}

/// `main` of the Lambda function.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    event_adapters::telemetry::init();
    let config = Config::from_env()?;
    let job = Job::new(&Clients::from_env().await, &config.table);
    let job = &job;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |e: lambda_runtime::LambdaEvent<Value>| async move {
            let (as_of, tenant) = parse_input(&e.payload, Utc::now().date_naive())?;
            let report = job.run(as_of, tenant.as_deref()).await?;
            if !report.errors.is_empty() {
                // Fail the invocation so the scheduler retries; a re-run is safe.
                return Err(lambda_runtime::Error::from(format!(
                    "{} loans failed: {:?}",
                    report.errors.len(),
                    report.errors
                )));
            }
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_as_of_date_comes_from_the_input_the_schedule_or_today() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(parse_input(&json!({}), today).unwrap(), (today, None));
        assert_eq!(
            parse_input(&json!({"asOf": "2026-04-15", "tenant": "acme"}), today).unwrap(),
            (d("2026-04-15"), Some("acme".into()))
        );
        assert_eq!(
            parse_input(
                &json!({"time": "2026-05-02T06:00:00Z", "source": "aws.scheduler"}),
                today
            )
            .unwrap()
            .0,
            d("2026-05-02")
        );
        assert!(parse_input(&json!({"asOf": "15/04/2026"}), today).is_err());
    }
}
