//! Read-model rebuilds as resumable jobs: one job re-derives every loan summary of a tenant
//! as a chain of bounded steps, one page of loans each, so no single invocation is long.
//!
//! The job is an item of the event table (`RB#<tenant>#<jobId>`, see
//! [`crate::store::layout`]) holding its status, counts, pages done and the cursor of the
//! next page. A step ([`Step`], page `n`) runs only while the job has done exactly `n`
//! pages: it folds the page's loans, writes their summaries under the version guard (a
//! re-run writes the same items, and never over a newer one), then stores the job at
//! `n + 1` pages conditioned on it still being at `n`. Its successor is sent after that
//! (as an SQS message on the rebuild queue, or run inline by the synchronous route); a step
//! whose page is already done hands on its successor again, so a crash between storing
//! and sending resumes where it stopped. The step after the last page records
//! `Ops.ProjectionRebuilt` as the job's starter and completes the job.
//!
//! | setting | meaning |
//! |---|---|
//! | `PROJECTION_REBUILD_QUEUE_URL` | the FIFO queue of job steps (unset: rebuilds run inline only) |
//! | `PROJECTION_REBUILD_DLQ_URL` | its dead letters: the step function moves a message that can never succeed (not a step, no such job) there itself, with its reason |
//! | `PROJECTION_REBUILD_PAGE_SIZE` | loans per step (default 100) |
//! | `PROJECTION_REBUILD_INLINE_SECS` | how long the synchronous route runs steps before it hands the rest to the queue (default 20; API Gateway gives 29) |

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use lending_events::envelope::StreamId;
use lending_events::projections::loan_summary;
use lending_events::upcast::upcast;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{classify, AdapterError};
use crate::store::indexes::{events_by_type, Window};
use crate::store::layout::{attr, key, kind, n, rebuild_job_pk, s, str_of};
use crate::store::read_models::Rebuilt;
use crate::store::{DynamoStore, EventStore};

pub const QUEUE_URL_VAR: &str = "PROJECTION_REBUILD_QUEUE_URL";
pub const DLQ_URL_VAR: &str = "PROJECTION_REBUILD_DLQ_URL";
pub const PAGE_SIZE_VAR: &str = "PROJECTION_REBUILD_PAGE_SIZE";
pub const INLINE_SECS_VAR: &str = "PROJECTION_REBUILD_INLINE_SECS";

/// Where job steps go and how big they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildSettings {
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub page_size: usize,
    pub inline_budget: Duration,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        RebuildSettings {
            queue_url: None,
            dlq_url: None,
            page_size: 100,
            inline_budget: Duration::from_secs(20),
        }
    }
}

impl RebuildSettings {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> RebuildSettings {
        let d = RebuildSettings::default();
        let number = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
        RebuildSettings {
            queue_url: var(QUEUE_URL_VAR).filter(|v| !v.is_empty()),
            dlq_url: var(DLQ_URL_VAR).filter(|v| !v.is_empty()),
            page_size: number(PAGE_SIZE_VAR)
                .map(|p| p.clamp(1, 1000) as usize)
                .unwrap_or(d.page_size),
            inline_budget: number(INLINE_SECS_VAR)
                .map(Duration::from_secs)
                .unwrap_or(d.inline_budget),
        }
    }

    /// The variables [`RebuildSettings::from_lookup`] reads back (the queues only when set).
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            (PAGE_SIZE_VAR.to_string(), self.page_size.to_string()),
            (
                INLINE_SECS_VAR.to_string(),
                self.inline_budget.as_secs().to_string(),
            ),
        ];
        for (name, url) in [
            (QUEUE_URL_VAR, &self.queue_url),
            (DLQ_URL_VAR, &self.dlq_url),
        ] {
            if let Some(url) = url {
                vars.push((name.to_string(), url.clone()));
            }
        }
        vars
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// A rebuild job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildJob {
    pub job_id: String,
    pub tenant: String,
    pub projection: String,
    /// Who started it: recorded on `Ops.ProjectionRebuilt`.
    pub started_by: String,
    pub status: JobStatus,
    pub loans: u64,
    pub written: u64,
    /// Pages done.
    pub pages: u64,
    pub page_size: usize,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub ops_event_id: Option<String>,
    /// Where the next page starts (the loan listing's own position); `None` before the
    /// first page and after the last.
    pub cursor: Option<Value>,
}

impl RebuildJob {
    pub fn new(tenant: &str, projection: &str, started_by: &str, page_size: usize) -> Self {
        RebuildJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.into(),
            projection: projection.into(),
            started_by: started_by.into(),
            status: JobStatus::Running,
            loans: 0,
            written: 0,
            pages: 0,
            page_size,
            started_at: Utc::now(),
            finished_at: None,
            error: None,
            ops_event_id: None,
            cursor: None,
        }
    }

    /// The job as `GET /projections/{name}/rebuilds/{jobId}` answers it.
    pub fn view(&self) -> Value {
        let mut v = json!({
            "projection": self.projection,
            "jobId": self.job_id,
            "status": self.status.as_str(),
            "loans": self.loans,
            "written": self.written,
            "pages": self.pages,
            "startedBy": self.started_by,
            "startedAt": self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "finishedAt": self.finished_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        });
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        if let Some(id) = &self.ops_event_id {
            v["opsEventId"] = json!(id);
        }
        v
    }

    /// The step that carries the job on from where it stands.
    pub fn next_step(&self) -> Step {
        Step {
            tenant: self.tenant.clone(),
            job_id: self.job_id.clone(),
            page: self.pages,
        }
    }
}

/// One step of a job: rebuild page `page` (counted from 0). The body of a rebuild-queue
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub tenant: String,
    pub job_id: String,
    pub page: u64,
}

/// What a step leaves to do.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Run this step next.
    Next(Step),
    /// Nothing more: the job as it stands (completed, failed, or carried on by another run).
    Done(RebuildJob),
}

/// What the steps need: the event store to fold histories and write summaries, the loan
/// listing, the job records and the `Ops` record.
pub trait RebuildPort: Send + Sync {
    type Store: EventStore;

    fn events(&self) -> &Self::Store;

    /// One page of the tenant's loan ids from `cursor` (`None`: the start), and the cursor
    /// of the page after it (`None`: this was the last).
    fn loan_page(
        &self,
        tenant: &str,
        cursor: Option<&Value>,
        size: usize,
    ) -> impl Future<Output = Result<(Vec<String>, Option<Value>), AdapterError>> + Send;

    /// The job, read consistently.
    fn load_job(
        &self,
        tenant: &str,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<RebuildJob>, AdapterError>> + Send;

    /// Store `job` when the stored one is running at `expected_pages` pages (`None`: only
    /// when there is none yet). `false` when that condition does not hold.
    fn save_job(
        &self,
        job: &RebuildJob,
        expected_pages: Option<u64>,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;

    /// Record `Ops.ProjectionRebuilt` of a finished job, once however often it is asked;
    /// its event id.
    fn record_rebuilt(
        &self,
        job: &RebuildJob,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;
}

/// Fold the history of each loan and write its summary under the version guard.
pub async fn rebuild_loans<S: EventStore>(
    store: &S,
    tenant: &str,
    loan_ids: &[String],
) -> Result<Rebuilt, AdapterError> {
    let mut rebuilt = Rebuilt::default();
    for loan_id in loan_ids {
        let stream = StreamId {
            tenant_id: tenant,
            aggregate_type: "Loan",
            aggregate_id: loan_id,
        };
        let history: Vec<_> = store
            .history(stream)
            .await?
            .into_iter()
            .map(upcast)
            .collect();
        rebuilt.loans += 1;
        if let Some(summary) = loan_summary(&history) {
            if store.put_loan_summary(&summary).await? {
                rebuilt.written += 1;
            }
        }
    }
    Ok(rebuilt)
}

/// Create the job record of a new rebuild; its first step is [`RebuildJob::next_step`].
pub async fn start_job<P: RebuildPort>(
    port: &P,
    tenant: &str,
    projection: &str,
    started_by: &str,
    page_size: usize,
) -> Result<RebuildJob, AdapterError> {
    if !lending_events::projections::PROJECTIONS.contains(&projection) {
        return Err(AdapterError::NotFound(format!(
            "no projection named {projection:?}"
        )));
    }
    let job = RebuildJob::new(tenant, projection, started_by, page_size.max(1));
    if !port.save_job(&job, None).await? {
        return Err(AdapterError::Aws(format!(
            "rebuild job {} exists already",
            job.job_id
        )));
    }
    Ok(job)
}

/// Run one step. Idempotent: a step whose page is done already only hands on its
/// successor; a stale or duplicate one does nothing.
pub async fn run_step<P: RebuildPort>(port: &P, step: &Step) -> Result<StepOutcome, AdapterError> {
    let job = port
        .load_job(&step.tenant, &step.job_id)
        .await?
        .ok_or_else(|| AdapterError::NotFound(format!("no rebuild job {}", step.job_id)))?;
    if job.status != JobStatus::Running || job.pages > step.page + 1 {
        return Ok(StepOutcome::Done(job));
    }
    if job.pages == step.page + 1 {
        // Done before (a crash or a lost send after storing it): carry on from it.
        return carry_on(port, job).await;
    }
    if job.pages < step.page {
        return Err(AdapterError::Decode(format!(
            "step {} of rebuild job {} is ahead of its {} pages done",
            step.page, job.job_id, job.pages
        )));
    }
    let (loan_ids, cursor) = port
        .loan_page(&job.tenant, job.cursor.as_ref(), job.page_size)
        .await?;
    let done = rebuild_loans(port.events(), &job.tenant, &loan_ids).await?;
    let after = RebuildJob {
        pages: job.pages + 1,
        loans: job.loans + done.loans,
        written: job.written + done.written,
        cursor,
        ..job.clone()
    };
    if !port.save_job(&after, Some(job.pages)).await? {
        let current = port.load_job(&job.tenant, &job.job_id).await?;
        // A write that succeeded but whose answer was lost is retried by the SDK and then
        // fails its own condition: the stored job is this one, so carry on. Otherwise
        // another run of this step stored it first and carries the job on.
        if current.as_ref() != Some(&after) {
            return Ok(StepOutcome::Done(current.unwrap_or(job)));
        }
    }
    carry_on(port, after).await
}

/// The successor of a job's last stored page, or its completion after the last page.
async fn carry_on<P: RebuildPort>(port: &P, job: RebuildJob) -> Result<StepOutcome, AdapterError> {
    if job.cursor.is_some() {
        return Ok(StepOutcome::Next(job.next_step()));
    }
    let ops_event_id = port.record_rebuilt(&job).await?;
    let completed = RebuildJob {
        status: JobStatus::Completed,
        finished_at: Some(Utc::now()),
        ops_event_id: Some(ops_event_id),
        ..job.clone()
    };
    if port.save_job(&completed, Some(job.pages)).await? {
        return Ok(StepOutcome::Done(completed));
    }
    let current = port.load_job(&job.tenant, &job.job_id).await?;
    Ok(StepOutcome::Done(current.unwrap_or(completed)))
}

/// Mark a running job failed with `error` (its steps stop).
pub async fn fail_job<P: RebuildPort>(
    port: &P,
    tenant: &str,
    job_id: &str,
    error: &str,
) -> Result<(), AdapterError> {
    let Some(job) = port.load_job(tenant, job_id).await? else {
        return Ok(());
    };
    if job.status != JobStatus::Running {
        return Ok(());
    }
    let failed = RebuildJob {
        status: JobStatus::Failed,
        finished_at: Some(Utc::now()),
        error: Some(error.chars().take(1000).collect()),
        ..job.clone()
    };
    port.save_job(&failed, Some(job.pages)).await?;
    Ok(())
}

// ---- DynamoDB and SQS ------------------------------------------------------------------

/// The steps over the event table: loans from the `byType` index (`Loan.Created`), as the
/// rebuild always listed them, never a scan.
#[derive(Clone)]
pub struct DynamoRebuild {
    store: DynamoStore,
}

impl DynamoRebuild {
    pub fn new(store: DynamoStore) -> Self {
        DynamoRebuild { store }
    }
}

impl RebuildPort for DynamoRebuild {
    type Store = DynamoStore;

    fn events(&self) -> &DynamoStore {
        &self.store
    }

    async fn loan_page(
        &self,
        tenant: &str,
        cursor: Option<&Value>,
        size: usize,
    ) -> Result<(Vec<String>, Option<Value>), AdapterError> {
        let start = cursor
            .map(|c| {
                crate::http::cursor::key_from_value(c)
                    .ok_or_else(|| AdapterError::Decode("rebuild job cursor".into()))
            })
            .transpose()?;
        let page = events_by_type(
            self.store.client(),
            self.store.table(),
            tenant,
            "Loan.Created",
            &Window::between(None, None),
            size,
            start,
        )
        .await?;
        let ids = page.events.into_iter().map(|e| e.aggregate_id).collect();
        Ok((
            ids,
            page.last_key.as_ref().map(crate::http::cursor::key_json),
        ))
    }

    async fn load_job(
        &self,
        tenant: &str,
        job_id: &str,
    ) -> Result<Option<RebuildJob>, AdapterError> {
        let out = self
            .store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(key(rebuild_job_pk(tenant, job_id), 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem(rebuild job)", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let body = str_of(item, attr::JOB)
            .ok_or_else(|| AdapterError::Decode("rebuild job item without job".into()))?;
        let job: RebuildJob = serde_json::from_str(body)
            .map_err(|e| AdapterError::Decode(format!("stored rebuild job: {e}")))?;
        // The key is the tenant's: a job of another tenant is never read here.
        Ok(Some(job).filter(|j| j.tenant == tenant))
    }

    async fn save_job(
        &self,
        job: &RebuildJob,
        expected_pages: Option<u64>,
    ) -> Result<bool, AdapterError> {
        let body = serde_json::to_string(job)
            .map_err(|e| AdapterError::Decode(format!("rebuild job: {e}")))?;
        let mut item = key(rebuild_job_pk(&job.tenant, &job.job_id), 0);
        item.insert(attr::KIND.into(), s(kind::REBUILD_JOB));
        item.insert(attr::JOB.into(), s(body));
        item.insert(attr::STATUS.into(), s(job.status.as_str()));
        item.insert(attr::PAGES.into(), n(job.pages));
        item.insert(attr::TENANT_ID.into(), s(&job.tenant));
        let put = self
            .store
            .client()
            .put_item()
            .table_name(self.store.table())
            .set_item(Some(item));
        let put = match expected_pages {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(p) => put
                .condition_expression("#p = :p AND #s = :running")
                .expression_attribute_names("#p", attr::PAGES)
                .expression_attribute_names("#s", attr::STATUS)
                .expression_attribute_values(":p", n(p))
                .expression_attribute_values(":running", s(JobStatus::Running.as_str())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("PutItem(rebuild job)", e)),
        }
    }

    async fn record_rebuilt(&self, job: &RebuildJob) -> Result<String, AdapterError> {
        // The record's id is the job's: a completion run again (a redelivered last step, a
        // crash before the job was stored as completed) finds the first record.
        let event_id = uuid::Uuid::parse_str(&job.job_id)
            .map_err(|e| AdapterError::Decode(format!("rebuild job id: {e}")))?;
        let recorded = super::record_once(
            &self.store,
            &job.tenant,
            &job.started_by,
            "Ops.ProjectionRebuilt",
            json!({"projection": job.projection, "loans": job.loans, "written": job.written}),
            event_id,
        )
        .await?;
        Ok(recorded.event_id.to_string())
    }
}

/// The FIFO queue of job steps: one message group per job (its steps in order), the
/// deduplication id `<jobId>#<page>` (a step handed on twice is sent once).
#[derive(Clone)]
pub struct RebuildQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl RebuildQueue {
    pub async fn send(&self, step: &Step) -> Result<(), AdapterError> {
        let body =
            serde_json::to_string(step).map_err(|e| AdapterError::Decode(format!("step: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(&step.job_id)
            .message_deduplication_id(format!("{}#{}", step.job_id, step.page))
            .send()
            .await
            .map_err(|e| classify("SendMessage(rebuild step)", e))?;
        Ok(())
    }
}

/// The rebuild queue's consumer: runs each step and sends its successor. A step that
/// fails is reported for redelivery; on its last receive the job is marked failed first
/// (SQS then moves it to the dead letters). A message that can never succeed (not a step,
/// no such job) goes to the dead letters at once with its reason.
pub struct RebuildRunner<P: RebuildPort = DynamoRebuild> {
    pub port: P,
    pub queue: RebuildQueue,
    /// The step queue's dead letters (`None`: such messages are only logged and dropped).
    pub dlq_url: Option<String>,
    pub max_receives: u32,
}

impl<P: RebuildPort> RebuildRunner<P> {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let body = record.body.clone().unwrap_or_default();
            let receives: u32 = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let handled = match serde_json::from_str::<Step>(&body) {
                Ok(step) => self.step(&step, receives).await,
                Err(e) => {
                    self.dead_letter(&body, &format!("not a rebuild step: {e}"))
                        .await
                }
            };
            if let Err(e) = handled {
                tracing::warn!(message = %id, receives, error = %e, "rebuild message failed; redelivered");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    /// Run a step and send its successor; a failure that retrying cannot mend dead-letters
    /// the step, and the job is marked failed when its step will not come back.
    async fn step(&self, step: &Step, receives: u32) -> Result<(), AdapterError> {
        let result = match run_step(&self.port, step).await {
            Ok(StepOutcome::Next(next)) => self.queue.send(&next).await,
            Ok(StepOutcome::Done(_)) => Ok(()),
            Err(e) => Err(e),
        };
        let Err(e) = result else { return Ok(()) };
        tracing::warn!(job = %step.job_id, page = step.page, receives, error = %e, "rebuild step failed");
        let permanent = matches!(e, AdapterError::NotFound(_) | AdapterError::Decode(_));
        if permanent || receives >= self.max_receives {
            if let Err(f) = fail_job(&self.port, &step.tenant, &step.job_id, &e.to_string()).await {
                tracing::warn!(job = %step.job_id, error = %f, "rebuild job not marked failed");
            }
        }
        if permanent {
            let body = serde_json::to_string(step).unwrap_or_default();
            return self.dead_letter(&body, &e.to_string()).await;
        }
        Err(e)
    }

    /// Move a message to the dead letters with its reason (one group: their order is the
    /// order they failed in).
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), AdapterError> {
        tracing::error!(reason, "rebuild message dead-lettered");
        let Some(dlq) = &self.dlq_url else {
            return Ok(());
        };
        let reason: String = reason.chars().take(1000).collect();
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&reason)
            .build()
            .map_err(|e| AdapterError::Aws(e.to_string()))?;
        self.queue
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(if body.is_empty() { "(empty)" } else { body })
            .message_group_id("dead-letters")
            .message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
            .message_attributes("reason", attribute)
            .send()
            .await
            .map_err(|e| classify("SendMessage(rebuild dead letter)", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
