//! The event source mappings, played locally: build the exact Lambda event JSON from what
//! the AWS APIs return, deserialise it into the `aws_lambda_events` type, and hand it to the
//! same handler the Lambda function runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use event_adapters::operator::rebuild::RebuildRunner;
use event_adapters::queue::DomainQueue;
use event_adapters::subscriptions::delivery::{DeliveryRunner, WebhookPort};
use event_adapters::AdapterError;
use serde_json::{json, Map, Value};

use crate::checkpoint::StreamCheckpoint;
use crate::faults::{Faults, LocalDispatcher, LocalDomainRunner};
use crate::settings::{batch_timeout, batch_window};

const IDLE: Duration = Duration::from_millis(150);

/// Receives that returned at least one message, and the messages they returned, since the
/// process started: `load` tells the working receives from the idle long polls with them.
pub static RECEIVES_WITH_MESSAGES: AtomicU64 = AtomicU64::new(0);
pub static MESSAGES_RECEIVED: AtomicU64 = AtomicU64::new(0);
/// The stream mapping's BatchSize in the template.
const STREAM_BATCH: usize = 100;

/// Poll every shard of the table's stream, as the stream event source mapping does: a shard
/// seen for the first time is read from its start (nothing written before the runner
/// started is missed), a shard read before resumes after its checkpoint (a restarted runner
/// does not dispatch again what it already dispatched). The checkpoint advances after each
/// batch to the last record dispatched, and never past a record dispatch reported failed.
pub async fn poll_stream(
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    dispatcher: LocalDispatcher,
    mut checkpoint: StreamCheckpoint,
) {
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut last_refresh = std::time::Instant::now() - Duration::from_secs(60);
    let window = batch_window();
    // Per shard: records read but not dispatched yet, and when the first of them was read.
    let mut gathered: HashMap<String, (Vec<Value>, std::time::Instant)> = HashMap::new();
    loop {
        if last_refresh.elapsed() > Duration::from_secs(2) {
            last_refresh = std::time::Instant::now();
            match client.describe_stream().stream_arn(&arn).send().await {
                Ok(d) => {
                    for shard in d
                        .stream_description()
                        .map(|s| s.shards())
                        .unwrap_or_default()
                    {
                        let Some(id) = shard.shard_id() else { continue };
                        if iterators.contains_key(id) || finished.contains(id) {
                            continue;
                        }
                        match resume(&client, &arn, id, &checkpoint).await {
                            Ok(it) => {
                                iterators.insert(id.to_string(), it);
                            }
                            Err(e) => tracing::warn!(shard = id, error = %e, "no shard iterator"),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e), "DescribeStream failed")
                }
            }
        }
        let mut busy = false;
        // Shards without an iterator after an error: dropped here, not marked finished, so
        // the next DescribeStream picks them up again from their checkpoint.
        let mut lost: Vec<String> = Vec::new();
        for (shard, it) in iterators.iter_mut() {
            let Some(current) = it.clone() else { continue };
            let room = STREAM_BATCH - gathered.get(shard).map_or(0, |g| g.0.len());
            let out = match client
                .get_records()
                .shard_iterator(&current)
                .limit(room.max(1) as i32)
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(shard, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e), "GetRecords failed");
                    // Read again from the checkpoint: what was gathered comes back with it.
                    gathered.remove(shard);
                    match resume(&client, &arn, shard, &checkpoint).await {
                        Ok(next) => *it = next,
                        Err(e) => {
                            tracing::warn!(shard, error = %e, "no shard iterator");
                            lost.push(shard.clone());
                        }
                    }
                    continue;
                }
            };
            *it = out.next_shard_iterator().map(str::to_string);
            if !out.records().is_empty() {
                let g = gathered
                    .entry(shard.clone())
                    .or_insert_with(|| (Vec::new(), std::time::Instant::now()));
                g.0.extend(out.records().iter().map(|r| record_json(r, &arn)));
            }
            // A closed shard hands over what it gathered at once.
            let ready = gathered.get(shard).is_some_and(|(records, since)| {
                records.len() >= STREAM_BATCH || since.elapsed() >= window || it.is_none()
            });
            if !ready {
                continue;
            }
            let Some((records, _)) = gathered.remove(shard) else {
                continue;
            };
            busy = true;
            let sequences: Vec<String> = records
                .iter()
                .map(|r| {
                    r["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            let event_json = json!({ "Records": records });
            let event: aws_lambda_events::dynamodb::Event = match serde_json::from_value(event_json)
            {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "stream records do not decode as a Lambda event");
                    continue;
                }
            };
            let resp = dispatcher.handle(event).await;
            let first_failed = resp
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.clone());
            // Everything before the first failed record was dispatched; with no failure,
            // the whole batch was.
            let dispatched = match &first_failed {
                Some(seq) => sequences
                    .iter()
                    .position(|s| s == seq)
                    .and_then(|i| i.checked_sub(1))
                    .map(|i| &sequences[i]),
                None => sequences.last(),
            };
            if let Some(last) = dispatched.filter(|s| !s.is_empty()) {
                if let Err(e) = checkpoint.advance(shard, last) {
                    tracing::warn!(shard, error = %e, "stream checkpoint not saved");
                }
            }
            if let Some(seq) = first_failed {
                // As Lambda does: retry the batch from the first failed record.
                tracing::warn!(shard, seq, "dispatch reported a failure; retrying from it");
                tokio::time::sleep(Duration::from_millis(500)).await;
                match iterator(
                    &client,
                    &arn,
                    shard,
                    ShardIteratorType::AtSequenceNumber,
                    Some(&seq),
                )
                .await
                {
                    Ok(next) => *it = next,
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "no shard iterator");
                        lost.push(shard.clone());
                    }
                }
            }
        }
        for shard in lost {
            iterators.remove(&shard);
        }
        iterators.retain(|shard, it| {
            if it.is_none() {
                finished.insert(shard.clone());
            }
            it.is_some()
        });
        if !busy {
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// An iterator for a shard from where its mapping stands: after the checkpoint, or from
/// the shard's start when it has none. A checkpoint older than the stream's 24 h retention
/// cannot be read after; then the shard resumes from its oldest record (as an event source
/// mapping does when its position has been trimmed).
async fn resume(
    client: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
    checkpoint: &StreamCheckpoint,
) -> Result<Option<String>, String> {
    let Some(seq) = checkpoint.position(shard) else {
        return iterator(client, arn, shard, ShardIteratorType::TrimHorizon, None).await;
    };
    match iterator(
        client,
        arn,
        shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(seq),
    )
    .await
    {
        Err(e) if e.contains("TrimmedDataAccess") => {
            tracing::warn!(shard, seq, error = %e, "checkpoint trimmed from the stream; reading from the oldest record");
            iterator(client, arn, shard, ShardIteratorType::TrimHorizon, None).await
        }
        other => other,
    }
}

async fn iterator(
    client: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> Result<Option<String>, String> {
    client
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_sequence_number(seq.map(str::to_string))
        .send()
        .await
        .map(|o| o.shard_iterator().map(str::to_string))
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())
}

fn record_json(r: &aws_sdk_dynamodbstreams::types::Record, arn: &str) -> Value {
    let change = r.dynamodb();
    let image = |m: Option<&HashMap<String, AttributeValue>>| -> Value {
        Value::Object(
            m.map(|m| m.iter().map(|(k, v)| (k.clone(), attr_json(v))).collect())
                .unwrap_or_default(),
        )
    };
    json!({
        "eventID": r.event_id().unwrap_or_default(),
        "eventName": r.event_name().map(|n| n.as_str()).unwrap_or_default(),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region().unwrap_or("us-east-1"),
        "eventSourceARN": arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time()).map(|t| t.secs()).unwrap_or(0),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()).unwrap_or_default(),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
            "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()).unwrap_or("NEW_IMAGE"),
        }
    })
}

/// DynamoDB JSON of one attribute value, as Lambda puts it in stream events.
fn attr_json(v: &AttributeValue) -> Value {
    use aws_sdk_dynamodbstreams::primitives::Blob;
    let b64 = |b: &Blob| Value::String(base64(b.as_ref()));
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(b) => json!({"NULL": b}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::L(l) => json!({"L": l.iter().map(attr_json).collect::<Vec<_>>()}),
        AttributeValue::M(m) => {
            json!({"M": m.iter().map(|(k, v)| (k.clone(), attr_json(v))).collect::<Map<_, _>>()})
        }
        _ => json!({"NULL": true}),
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What an SQS event source mapping feeds: a domain runner (with its fault hooks) or the
/// delivery function.
pub trait Consumer: Send + Sync {
    /// Handle one batch within `lease`.
    fn handle(
        &self,
        event: SqsEvent,
        lease: Duration,
    ) -> impl std::future::Future<Output = SqsBatchResponse> + Send;

    /// Delete handled messages, as the mapping does after a batch; the handles not deleted.
    fn delete(
        &self,
        receipt_handles: &[String],
    ) -> impl std::future::Future<Output = Result<Vec<String>, AdapterError>> + Send;

    /// Whether to receive at all now (false: the mapping is as good as disabled).
    fn receiving(&self) -> impl std::future::Future<Output = bool> + Send {
        async { true }
    }

    /// Told of every batch before it is handled.
    fn note_batch(&self, _event: &SqsEvent) {}

    /// Told when a receive found the queue empty (a Lambda instance's statistics wait for
    /// its next batch or its shutdown; a poller's for this).
    fn idle(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// A domain queue's consumer: its batch runner and the fault hooks around it.
pub struct DomainConsumer {
    pub runner: std::sync::Arc<LocalDomainRunner>,
    pub faults: std::sync::Arc<Faults>,
}

impl Consumer for DomainConsumer {
    async fn handle(&self, event: SqsEvent, lease: Duration) -> SqsBatchResponse {
        self.runner.handle(event, lease).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, AdapterError> {
        self.runner.queue().delete(receipt_handles).await
    }

    async fn receiving(&self) -> bool {
        any_enabled(&self.runner).await
    }

    fn note_batch(&self, event: &SqsEvent) {
        let handlers = self.runner.handlers().iter().map(|h| h.name());
        self.faults.note_batch(event, handlers);
    }

    async fn idle(&self) {
        self.runner.flush_stats_when_due().await
    }
}

impl<W: WebhookPort> Consumer for DeliveryRunner<W> {
    async fn handle(&self, event: SqsEvent, _lease: Duration) -> SqsBatchResponse {
        DeliveryRunner::handle(self, event).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, AdapterError> {
        self.queue().delete(receipt_handles).await
    }
}

impl Consumer for RebuildRunner {
    async fn handle(&self, event: SqsEvent, _lease: Duration) -> SqsBatchResponse {
        RebuildRunner::handle(self, event).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<Vec<String>, AdapterError> {
        event_adapters::queue::SqsDomainQueue {
            client: self.queue.client.clone(),
            queue_url: Some(self.queue.queue_url.clone()),
            dlq_url: None,
        }
        .delete(receipt_handles)
        .await
    }
}

/// How long a receive waits for messages. SQS answers as soon as one arrives, so this costs
/// no latency; it sets how often an idle queue is asked (Lambda's event source mapping
/// long-polls for 20 s). Every call here is a call the emulator serves instead of the
/// system's own, and its ceiling is calls per second.
const RECEIVE_WAIT_SECS: i32 = 10;

/// Poll one queue and feed its consumer, deleting what it did not report failed.
pub async fn poll_queue<C: Consumer>(
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    runner: std::sync::Arc<C>,
) {
    loop {
        // As disabling an event source mapping does: while every handler of the domain is
        // switched off, receive nothing, so messages wait without using up receives.
        if !runner.receiving().await {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let out = match sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .visibility_timeout(batch_timeout().as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            .config_override(patient_receive())
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let messages = out.messages();
        if messages.is_empty() {
            runner.idle().await;
            continue;
        }
        RECEIVES_WITH_MESSAGES.fetch_add(1, Ordering::Relaxed);
        MESSAGES_RECEIVED.fetch_add(messages.len() as u64, Ordering::Relaxed);
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: Map<String, Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone()))).collect())
                    .unwrap_or_default();
                let message_attributes: Map<String, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": []}))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "md5OfBody": m.md5_of_body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let event: aws_lambda_events::sqs::SqsEvent =
            match serde_json::from_value(json!({ "Records": records })) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "messages do not decode as a Lambda SQS event");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
        runner.note_batch(&event);
        let resp = runner.handle(event, batch_timeout()).await;
        let failed: HashSet<&str> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let handled: Vec<String> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .filter_map(|m| m.receipt_handle().map(str::to_string))
            .collect();
        // A receipt handle that expired while the batch ran (it outlasted its visibility
        // timeout) is not deleted (the port logs it): the message comes back and is handled
        // again.
        if !handled.is_empty() {
            if let Err(e) = runner.delete(&handled).await {
                tracing::warn!(queue = %url, error = %e, "DeleteMessageBatch failed");
            }
        }
    }
}

/// A receive that waits for its answer however busy the emulator is. A receive the SDK
/// gave up on (its attempt timeout is 10 s) still takes its messages on LocalStack: they
/// stay invisible for the batch timeout and count a receive without being handled, and
/// five of those move a message to the DLQ it never failed into.
fn patient_receive() -> aws_sdk_sqs::config::Builder {
    use aws_sdk_sqs::config::timeout::TimeoutConfig;
    aws_sdk_sqs::config::Builder::new().timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(300))
            .operation_timeout(Duration::from_secs(300))
            .build(),
    )
}

async fn any_enabled(runner: &LocalDomainRunner) -> bool {
    use event_adapters::ledger::Ledger;
    for h in runner.handlers() {
        if runner.ledger().enabled(h.name()).await.unwrap_or(true) {
            return true;
        }
    }
    runner.handlers().is_empty()
}
