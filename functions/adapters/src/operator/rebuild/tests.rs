//! The job steps over the in-memory event store: pages, resumption after a lost send,
//! duplicates, completion and failure.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use lending_events::{EventEnvelope, Metadata};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::store::memory::MemoryStore;

const TENANT: &str = "acme-bank";

/// The steps' port in memory: loans listed in id order, cursor = the index of the next.
#[derive(Default)]
struct MemoryRebuild {
    store: MemoryStore,
    loans: Vec<String>,
    jobs: Mutex<HashMap<(String, String), RebuildJob>>,
    recorded: Mutex<Vec<RebuildJob>>,
}

impl RebuildPort for MemoryRebuild {
    type Store = MemoryStore;

    fn events(&self) -> &MemoryStore {
        &self.store
    }

    async fn loan_page(
        &self,
        _tenant: &str,
        cursor: Option<&Value>,
        size: usize,
    ) -> Result<(Vec<String>, Option<Value>), AdapterError> {
        let from = cursor.and_then(Value::as_u64).unwrap_or(0) as usize;
        let to = (from + size).min(self.loans.len());
        let next = (to < self.loans.len()).then(|| json!(to));
        Ok((self.loans[from..to].to_vec(), next))
    }

    async fn load_job(
        &self,
        tenant: &str,
        job_id: &str,
    ) -> Result<Option<RebuildJob>, AdapterError> {
        let jobs = self.jobs.lock().unwrap();
        Ok(jobs.get(&(tenant.to_string(), job_id.to_string())).cloned())
    }

    async fn save_job(
        &self,
        job: &RebuildJob,
        expected_pages: Option<u64>,
    ) -> Result<bool, AdapterError> {
        let mut jobs = self.jobs.lock().unwrap();
        let key = (job.tenant.clone(), job.job_id.clone());
        let ok = match (jobs.get(&key), expected_pages) {
            (None, None) => true,
            (Some(stored), Some(p)) => stored.pages == p && stored.status == JobStatus::Running,
            _ => false,
        };
        if ok {
            jobs.insert(key, job.clone());
        }
        Ok(ok)
    }

    async fn record_rebuilt(&self, job: &RebuildJob) -> Result<String, AdapterError> {
        self.recorded.lock().unwrap().push(job.clone());
        Ok(format!("ops-{}", job.job_id))
    }
}

fn envelope(loan: &str, seq: u64, event_type: &str, payload: Value) -> EventEnvelope {
    let t0: DateTime<Utc> = "2026-01-31T09:00:00Z".parse().expect("a time");
    EventEnvelope {
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{loan}/{seq}").as_bytes()),
        event_type: event_type.into(),
        event_version: 1,
        domain: "loan".into(),
        aggregate_type: "Loan".into(),
        aggregate_id: loan.into(),
        sequence: seq,
        occurred_at: t0,
        recorded_at: t0,
        payload: payload.into(),
        metadata: Metadata {
            user_id: None,
            correlation_id: format!("corr-{loan}"),
            causation_id: None,
            source: Some("test".into()),
            tenant_id: TENANT.into(),
            principal: None,
        },
    }
}

/// `n` loans, every other one funded too.
fn port_with_loans(n: usize) -> MemoryRebuild {
    let port = MemoryRebuild::default();
    let mut loans = Vec::new();
    for i in 0..n {
        let loan = format!("L-{i:03}");
        let mut events = vec![envelope(
            &loan,
            1,
            "Loan.Created",
            json!({"loanId": loan, "borrowerId": "B-1", "amount": "12000.00", "interestRate": "6",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}),
        )];
        if i % 2 == 0 {
            events.push(envelope(
                &loan,
                2,
                "Loan.Funded",
                json!({"loanId": loan, "fundedAmount": "12000.00", "fundedAt": "2026-03-01T10:00:00Z"}),
            ));
        }
        port.store.seed(events);
        loans.push(loan);
    }
    MemoryRebuild { loans, ..port }
}

/// Run steps until none is left; the steps run.
async fn drive(port: &MemoryRebuild, job: &RebuildJob) -> (RebuildJob, u64) {
    let mut step = job.next_step();
    let mut steps = 0;
    loop {
        steps += 1;
        match run_step(port, &step).await.expect("a step") {
            StepOutcome::Next(next) => step = next,
            StepOutcome::Done(done) => return (done, steps),
        }
    }
}

/// The summary of every loan folded from its whole history.
async fn folds(port: &MemoryRebuild) -> Vec<lending_events::projections::LoanSummary> {
    let mut out = Vec::new();
    for loan in &port.loans {
        let stream = StreamId {
            tenant_id: TENANT,
            aggregate_type: "Loan",
            aggregate_id: loan,
        };
        let history: Vec<_> = port.store.history(stream).await.unwrap();
        out.extend(loan_summary(&history));
    }
    out
}

fn sorted(mut s: Vec<lending_events::projections::LoanSummary>) -> Vec<String> {
    s.sort_by(|a, b| a.loan_id.cmp(&b.loan_id));
    s.iter()
        .map(|x| serde_json::to_string(x).unwrap())
        .collect()
}

#[tokio::test]
async fn a_job_rebuilds_every_loan_page_by_page_and_records_once() {
    let port = port_with_loans(5);
    let job = start_job(&port, TENANT, "loan-summary", "ops-1", 2)
        .await
        .unwrap();
    let (done, steps) = drive(&port, &job).await;
    assert_eq!(done.status, JobStatus::Completed);
    // 5 loans at 2 a page: pages of 2, 2 and 1.
    assert_eq!((done.pages, steps), (3, 3));
    assert_eq!((done.loans, done.written), (5, 5));
    assert_eq!(done.ops_event_id, Some(format!("ops-{}", job.job_id)));
    assert!(done.finished_at.is_some());
    assert_eq!(
        sorted(port.store.loan_summaries()),
        sorted(folds(&port).await)
    );
    let recorded = port.recorded.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].started_by.as_str(), recorded[0].loans),
        ("ops-1", 5)
    );
}

#[tokio::test]
async fn a_step_whose_successor_was_lost_hands_it_on_again_without_rework() {
    let port = port_with_loans(3);
    let job = start_job(&port, TENANT, "loan-summary", "ops-1", 2)
        .await
        .unwrap();
    let first = run_step(&port, &job.next_step()).await.unwrap();
    let StepOutcome::Next(second) = first else {
        panic!("a second page: {first:?}")
    };
    // The send of `second` was lost (a crash): the first step comes back.
    let calls = port.store.calls.total();
    let again = run_step(&port, &job.next_step()).await.unwrap();
    assert_eq!(again, StepOutcome::Next(second.clone()));
    // Nothing was read or written again: the page was done.
    assert_eq!(port.store.calls.total(), calls);
    let after = port.load_job(TENANT, &job.job_id).await.unwrap().unwrap();
    assert_eq!((after.pages, after.loans), (1, 2));
    // The successor finishes the job; a stale duplicate of the first step then does nothing.
    let StepOutcome::Done(done) = run_step(&port, &second).await.unwrap() else {
        panic!("the last page completes the job")
    };
    assert_eq!(
        (done.status, done.pages, done.loans),
        (JobStatus::Completed, 2, 3)
    );
    assert!(matches!(
        run_step(&port, &job.next_step()).await.unwrap(),
        StepOutcome::Done(j) if j == done
    ));
    assert_eq!(port.recorded.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_page_run_twice_writes_nothing_new_and_counts_once() {
    let port = port_with_loans(4);
    let job = start_job(&port, TENANT, "loan-summary", "ops-1", 4)
        .await
        .unwrap();
    // Two deliveries of the only step, the second after the first's page is stored.
    let (done, _) = drive(&port, &job).await;
    assert_eq!((done.loans, done.written), (4, 4));
    let redone = rebuild_loans(&port.store, TENANT, &port.loans)
        .await
        .unwrap();
    assert_eq!((redone.loans, redone.written), (4, 0));
    let (again, steps) = drive(&port, &job).await;
    assert_eq!((again, steps), (done, 1));
}

#[tokio::test]
async fn a_failed_job_stops_and_an_empty_tenant_completes_at_once() {
    let port = port_with_loans(3);
    let job = start_job(&port, TENANT, "loan-summary", "ops-1", 1)
        .await
        .unwrap();
    fail_job(&port, TENANT, &job.job_id, "boom").await.unwrap();
    let StepOutcome::Done(failed) = run_step(&port, &job.next_step()).await.unwrap() else {
        panic!("a failed job runs no step")
    };
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.pages),
        (JobStatus::Failed, Some("boom"), 0)
    );
    assert_eq!(failed.view()["status"], "FAILED");
    assert_eq!(failed.view()["error"], "boom");

    let empty = MemoryRebuild::default();
    let job = start_job(&empty, TENANT, "loan-summary", "ops-1", 10)
        .await
        .unwrap();
    let (done, steps) = drive(&empty, &job).await;
    assert_eq!(
        (done.status, done.pages, done.loans, steps),
        (JobStatus::Completed, 1, 0, 1)
    );

    assert!(matches!(
        start_job(&empty, TENANT, "no-such-view", "ops-1", 10).await,
        Err(AdapterError::NotFound(_))
    ));
    assert!(matches!(
        run_step(
            &empty,
            &Step {
                tenant: TENANT.into(),
                job_id: "nope".into(),
                page: 0
            }
        )
        .await,
        Err(AdapterError::NotFound(_))
    ));
}

/// A port whose page saves are stored but answer as if their condition failed, as a
/// write retried after its answer was lost does.
struct LostAnswers(MemoryRebuild);

impl RebuildPort for LostAnswers {
    type Store = MemoryStore;

    fn events(&self) -> &MemoryStore {
        self.0.events()
    }

    async fn loan_page(
        &self,
        tenant: &str,
        cursor: Option<&Value>,
        size: usize,
    ) -> Result<(Vec<String>, Option<Value>), AdapterError> {
        self.0.loan_page(tenant, cursor, size).await
    }

    async fn load_job(
        &self,
        tenant: &str,
        job_id: &str,
    ) -> Result<Option<RebuildJob>, AdapterError> {
        self.0.load_job(tenant, job_id).await
    }

    async fn save_job(
        &self,
        job: &RebuildJob,
        expected_pages: Option<u64>,
    ) -> Result<bool, AdapterError> {
        let saved = self.0.save_job(job, expected_pages).await?;
        Ok(saved && expected_pages.is_none())
    }

    async fn record_rebuilt(&self, job: &RebuildJob) -> Result<String, AdapterError> {
        self.0.record_rebuilt(job).await
    }
}

#[tokio::test]
async fn a_save_whose_answer_was_lost_still_carries_the_job_on() {
    let port = LostAnswers(port_with_loans(5));
    let job = start_job(&port, TENANT, "loan-summary", "ops-1", 2)
        .await
        .unwrap();
    let mut step = job.next_step();
    let done = loop {
        match run_step(&port, &step).await.unwrap() {
            StepOutcome::Next(next) => step = next,
            StepOutcome::Done(done) => break done,
        }
    };
    assert_eq!(
        (done.status, done.pages, done.loans),
        (JobStatus::Completed, 3, 5)
    );
}

#[test]
fn steps_and_settings_read_back() {
    let step = Step {
        tenant: "t".into(),
        job_id: "j".into(),
        page: 3,
    };
    let text = serde_json::to_string(&step).unwrap();
    assert_eq!(serde_json::from_str::<Step>(&text).unwrap(), step);
    assert!(serde_json::from_str::<Step>(r#"{"tenant":"t","jobId":"j","page":-1}"#).is_err());
    let settings = RebuildSettings {
        queue_url: Some("http://q".into()),
        dlq_url: Some("http://d".into()),
        page_size: 3,
        inline_budget: Duration::from_secs(5),
    };
    let vars: HashMap<String, String> = settings.to_env().into_iter().collect();
    assert_eq!(
        RebuildSettings::from_lookup(|k| vars.get(k).cloned()),
        settings
    );
    let defaults = RebuildSettings::from_lookup(|k| (k == PAGE_SIZE_VAR).then(|| "0".into()));
    assert_eq!(defaults.page_size, 1, "a page holds one loan at least");
}
