//! The emulator's ceiling: the AWS calls the load run made, per event and by operation,
//! replayed directly against LocalStack with plain SDK calls (none of our code), with as many
//! concurrent callers as the system had. What it reaches is what the emulator allows for that
//! call mix; the load run's events/s over it is how close the system comes.

use super::*;
use event_adapters::store::layout::{guard_pk, switch_pk};

/// The tenant of the ceiling's own items: keys of the real families (from the table
/// layout), never a real tenant's.
fn ceiling_tenant(ctx: &Ctx) -> String {
    format!("ceiling-{}", ctx.run)
}

pub(super) struct CeilingReport {
    workers: usize,
    calls: u64,
    errors: u64,
    secs: f64,
    calls_per_event: f64,
    counts: BTreeMap<String, u64>,
}

impl CeilingReport {
    pub(super) fn print(&self, json: bool, load: &LoadReport) {
        let calls_per_sec = self.calls as f64 / self.secs.max(1e-6);
        let events_per_sec = calls_per_sec / self.calls_per_event.max(1e-9);
        let ratio = load.events_per_sec / events_per_sec.max(1e-9);
        if json {
            println!(
                "CEILING {}",
                json!({
                    "workers": self.workers, "calls": self.calls, "errors": self.errors,
                    "secs": round3(self.secs), "callsPerSec": round3(calls_per_sec),
                    "callsPerEvent": round3(self.calls_per_event),
                    "eventsPerSec": round3(events_per_sec),
                    "systemEventsPerSec": round3(load.events_per_sec),
                    "ratio": round3(ratio),
                    "mix": load.work_mix.iter().map(|(k, v)| (k.clone(), json!(round3(*v)))).collect::<serde_json::Map<_, _>>(),
                    "counts": self.counts,
                })
            );
        }
        let text = format!(
                "ceiling: {} calls by {} callers in {:.2} s ({} errors): {:.0} calls/s; at {:.2} calls per event that is {:.1} events/s; the system reached {:.1} events/s = {:.0} % of it",
                self.calls, self.workers, self.secs, self.errors, calls_per_sec,
                self.calls_per_event, events_per_sec, load.events_per_sec, ratio * 100.0
        );
        if json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// What the ceiling's calls write to and read from.
struct Ctx {
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    streams_client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    shard: String,
    /// A LATEST iterator of the shard: stream reads that find little, as most do.
    shard_iterator: String,
    table: String,
    /// The loans' streams the load run wrote (history and head queries read them).
    streams: Vec<String>,
    /// Per domain queue, real envelopes routed to it (message bodies).
    queues: Vec<(String, Vec<String>)>,
    /// Every published envelope (item bodies).
    envelopes: Vec<String>,
    batch: usize,
    entries_per_send: usize,
    run: String,
    next: AtomicU64,
    updates: AtomicU64,
    errors: AtomicU64,
}

/// Replay the measured work mix (calls per published event, by part and operation) for as
/// many events as the load run published, with one caller per concurrent caller the system
/// had: publishing clients + the stream poller + the queue pollers.
pub(super) async fn ceiling(
    opts: &Options,
    sdk: &config::SdkConfig,
    resources: &Provisioned,
    load: &LoadReport,
    published: &[Published],
) -> Result<CeilingReport, String> {
    let clients = Clients::counting_as(sdk, CEILING);
    let routing = RoutingTable::standard();
    let mut streams: Vec<String> = published.iter().map(|p| p.stream_pk.clone()).collect();
    streams.sort();
    streams.dedup();
    let queues = resources
        .queues
        .iter()
        .map(|q| {
            let bodies: Vec<String> = published
                .iter()
                .filter(|p| routing.domains_for(&p.event_type).any(|d| d == q.domain))
                .map(|p| p.envelope.clone())
                .collect();
            (q.queue_url.clone(), bodies)
        })
        .collect();
    let streams_client = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .interceptor(CallCounter::labelled(CEILING))
            .build(),
    );
    let stream_err =
        |e: &dyn std::fmt::Display| format!("ceiling: stream {}: {e}", resources.stream_arn);
    let described = streams_client
        .describe_stream()
        .stream_arn(&resources.stream_arn)
        .send()
        .await
        .map_err(|e| stream_err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
    let shard = described
        .stream_description()
        .and_then(|d| d.shards().last())
        .and_then(|s| s.shard_id())
        .ok_or_else(|| stream_err(&"no shard"))?
        .to_string();
    let shard_iterator = streams_client
        .get_shard_iterator()
        .stream_arn(&resources.stream_arn)
        .shard_id(&shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::Latest)
        .send()
        .await
        .map_err(|e| stream_err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?
        .shard_iterator()
        .ok_or_else(|| stream_err(&"no shard iterator"))?
        .to_string();
    let ctx = Arc::new(Ctx {
        ddb: clients.dynamodb.clone(),
        sqs: clients.sqs.clone(),
        streams_client,
        stream_arn: resources.stream_arn.clone(),
        shard,
        shard_iterator,
        table: resources.table.clone(),
        streams,
        queues,
        envelopes: published.iter().map(|p| p.envelope.clone()).collect(),
        batch: opts.batch,
        entries_per_send: load.entries_per_send,
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        next: AtomicU64::new(0),
        updates: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let n = published.len() as f64;
    let mut ops: Vec<String> = Vec::new();
    for (op, per_event) in &load.work_mix {
        ops.extend(std::iter::repeat_n(
            op.clone(),
            (per_event * n).round() as usize,
        ));
    }
    shuffle(&mut ops);
    let ops = Arc::new(ops);
    let workers =
        opts.concurrency + 1 + resources.queues.len() * crate::settings::queue_concurrency();
    config::reset_call_counts();
    let index = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (ctx, ops, index) = (ctx.clone(), ops.clone(), index.clone());
        set.spawn(async move {
            loop {
                let i = index.fetch_add(1, Ordering::Relaxed);
                let Some(op) = ops.get(i) else { break };
                if let Err(e) = call(&ctx, op).await {
                    if ctx.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        tracing::warn!(op, error = %e, "ceiling call failed");
                    }
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| format!("ceiling caller: {e}"))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let counts = config::call_counts_for(CEILING);
    Ok(CeilingReport {
        workers,
        calls: counts.values().sum(),
        errors: ctx.errors.load(Ordering::Relaxed),
        secs,
        calls_per_event: load.work_mix.values().sum::<f64>()
            // each replayed receive brings its delete, as the mapping's did
            + load.work_mix.get("handlers/SQS.ReceiveMessage").copied().unwrap_or(0.0),
        counts,
    })
}

/// Fisher-Yates with a xorshift seeded from the clock: spread the operations evenly.
fn shuffle<T>(v: &mut [T]) {
    let mut x = (Utc::now().timestamp_subsec_nanos() as u64) | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// One call shaped like the system's call of that part and operation.
async fn call(ctx: &Ctx, op: &str) -> Result<(), String> {
    let k = ctx.next.fetch_add(1, Ordering::Relaxed) as usize;
    let stream = &ctx.streams[k % ctx.streams.len()];
    let ddb_err = |e: &dyn std::fmt::Display| format!("{op}: {e}");
    match op {
        // The head read before an append.
        "ingest/DynamoDB.Query" => {
            ctx.ddb
                .query()
                .table_name(&ctx.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(stream))
                .projection_expression("sk")
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        }
        // A handler's history read.
        o if o.ends_with("/DynamoDB.Query") => {
            ctx.ddb
                .query()
                .table_name(&ctx.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(stream))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        }
        // Event item + eventId guard per event: the request's events (ingest) or a follow-on.
        o if o.ends_with("/DynamoDB.TransactWriteItems") || o.ends_with("/DynamoDB.PutItem") => {
            let events = if o.starts_with(INGEST) { ctx.batch } else { 1 };
            let guard = o.ends_with("TransactWriteItems");
            let mut items = Vec::new();
            for j in 0..events {
                let body = ctx.envelopes.get((k + j) % ctx.envelopes.len().max(1));
                let item = HashMap::from([
                    (
                        attr::PK.to_string(),
                        s(stream_pk(&StreamId {
                            tenant_id: &ceiling_tenant(ctx),
                            aggregate_type: "Ceiling",
                            aggregate_id: &format!("{k}-{j}"),
                        })),
                    ),
                    (attr::SK.to_string(), AttributeValue::N("1".into())),
                    // Not an event item: the dispatcher skips these items.
                    (attr::KIND.to_string(), s("ceiling")),
                    (
                        attr::ENVELOPE.to_string(),
                        s(body.cloned().unwrap_or_default()),
                    ),
                    (attr::TYPE_KEY.to_string(), s(format!("ceiling#{k}"))),
                    (attr::CORR_KEY.to_string(), s(format!("ceiling#{k}"))),
                    (attr::RECORDED_AT.to_string(), s(Utc::now().to_rfc3339())),
                ]);
                if !guard {
                    ctx.ddb
                        .put_item()
                        .table_name(&ctx.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .send()
                        .await
                        .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
                    continue;
                }
                let g = HashMap::from([
                    (
                        attr::PK.to_string(),
                        s(guard_pk(
                            &ceiling_tenant(ctx),
                            &uuid::Uuid::from_u64_pair(k as u64, j as u64),
                        )),
                    ),
                    (attr::SK.to_string(), AttributeValue::N("0".into())),
                    (attr::KIND.to_string(), s("ceilingGuard")),
                ]);
                for it in [item, g] {
                    let put = Put::builder()
                        .table_name(&ctx.table)
                        .set_item(Some(it))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| e.to_string())?;
                    items.push(TransactWriteItem::builder().put(put).build());
                }
            }
            if guard {
                ctx.ddb
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
            }
        }
        // Processing records: claims (conditional, a new record) and completions alternate;
        // a completion updates a record claimed well before, so no claim finds one.
        o if o.ends_with("/DynamoDB.UpdateItem") => {
            let u = ctx.updates.fetch_add(1, Ordering::Relaxed);
            let claim = u.is_multiple_of(2);
            let record = if claim {
                u / 2
            } else {
                (u / 2).saturating_sub(64)
            };
            let pk = record_pk(&ceiling_tenant(ctx), &record.to_string(), "ceiling");
            let req = ctx
                .ddb
                .update_item()
                .table_name(&ctx.table)
                .key("pk", s(pk))
                .key("sk", AttributeValue::N("0".into()))
                .expression_attribute_names("#st", "status");
            let req = if claim {
                req.update_expression(
                    "SET #st = :ip, attempts = if_not_exists(attempts, :zero) + :one, kind = :kind",
                )
                .condition_expression("attribute_not_exists(pk) OR #st = :failed")
                .expression_attribute_values(":ip", s("IN_PROGRESS"))
                .expression_attribute_values(":failed", s("FAILED"))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":kind", s("ceiling"))
            } else {
                req.update_expression("SET #st = :done, completedAt = :now, #log = list_append(if_not_exists(#log, :empty), :entry)")
                    .expression_attribute_names("#log", "log")
                    .expression_attribute_values(":done", s("COMPLETED"))
                    .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
                    .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                    .expression_attribute_values(
                        ":entry",
                        AttributeValue::L(vec![AttributeValue::M(HashMap::from([(
                            "outcome".to_string(),
                            s("completed"),
                        )]))]),
                    )
            };
            req.send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        }
        o if o.ends_with("/DynamoDB.GetItem") => {
            ctx.ddb
                .get_item()
                .table_name(&ctx.table)
                .key(attr::PK, s(switch_pk(&format!("ceiling-{}", k % 6))))
                .key("sk", AttributeValue::N("0".into()))
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        }
        o if o.ends_with("/SQS.SendMessageBatch") => {
            let (url, bodies) = &ctx.queues[k % ctx.queues.len()];
            let mut entries = Vec::new();
            for j in 0..ctx.entries_per_send {
                let body = bodies
                    .get((k + j) % bodies.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| "{}".into());
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(j.to_string())
                        .message_body(body)
                        .message_group_id(&ctx.streams[(k + j) % ctx.streams.len()])
                        .message_deduplication_id(format!("ceiling-{}-{k}-{j}", ctx.run))
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            ctx.sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        }
        // A receive and, when it brought messages, their delete (as the mapping does).
        o if o.ends_with("/SQS.ReceiveMessage") => {
            let (url, _) = &ctx.queues[k % ctx.queues.len()];
            let out = ctx
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            let entries: Vec<DeleteMessageBatchRequestEntry> = out
                .messages()
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            if !entries.is_empty() {
                ctx.sqs
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| ddb_err(&aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            }
        }
        "stream/Streams.GetRecords" => {
            ctx.streams_client
                .get_records()
                .shard_iterator(&ctx.shard_iterator)
                .limit(100)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        }
        "stream/Streams.GetShardIterator" => {
            ctx.streams_client
                .get_shard_iterator()
                .stream_arn(&ctx.stream_arn)
                .shard_id(&ctx.shard)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::Latest)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        }
        o if o.starts_with("stream/") => {
            ctx.streams_client
                .describe_stream()
                .stream_arn(&ctx.stream_arn)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        }
        // Anything else the system called (rare: a visibility change, a DLQ send) is
        // replayed as a cheap read of the same service.
        o if o.contains("/SQS.") => {
            let (url, _) = &ctx.queues[k % ctx.queues.len()];
            ctx.sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        }
        _ => {
            ctx.ddb
                .get_item()
                .table_name(&ctx.table)
                .key("pk", s(stream))
                .key("sk", AttributeValue::N("1".into()))
                .send()
                .await
                .map_err(|e| ddb_err(&aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        }
    }
    Ok(())
}
