//! Create the table and the queues described by `event_adapters::topology`, idempotently.

use std::time::Duration;

use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use event_adapters::config::Clients;
use event_adapters::topology::{
    self, GSIS, GSI_PROJECTION, MAX_RECEIVE_COUNT, STREAM_VIEW, TABLE_KEYS, VISIBILITY_TIMEOUT_SECS,
};
use lending_events::Domain;
use serde_json::json;

/// A FIFO queue and its dead-letter queue.
pub struct QueueUrls {
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
}

pub struct ProvisionedQueue {
    pub domain: Domain,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
}

pub struct Provisioned {
    pub table: String,
    pub stream_arn: String,
    pub queues: Vec<ProvisionedQueue>,
    /// The delivery queue of subscriptions and its dead letters.
    pub delivery: QueueUrls,
    /// The KMS key (alias) of subscriptions' signing secrets.
    pub subscription_key: String,
    /// The queue of read-model rebuild steps and its dead letters.
    pub rebuild: QueueUrls,
}

impl Provisioned {
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "table": self.table,
            "streamArn": self.stream_arn,
            "queues": self.queues.iter().map(|q| json!({"domain": q.domain, "queueUrl": q.queue_url, "dlqUrl": q.dlq_url})).collect::<Vec<_>>(),
            "deliveryQueueUrl": self.delivery.queue_url,
            "deliveryDlqUrl": self.delivery.dlq_url,
            "subscriptionKey": self.subscription_key,
            "rebuildQueueUrl": self.rebuild.queue_url,
            "rebuildDlqUrl": self.rebuild.dlq_url,
        })
    }

    /// Where subscriptions' deliveries go and the key of their secrets.
    pub fn subscription_settings(&self) -> event_adapters::subscriptions::SubscriptionSettings {
        let mut settings = event_adapters::subscriptions::SubscriptionSettings::from_lookup(|k| {
            std::env::var(k).ok()
        });
        settings.delivery_queue_url = Some(self.delivery.queue_url.clone());
        settings.delivery_dlq_url = Some(self.delivery.dlq_url.clone());
        settings.key_id = Some(self.subscription_key.clone());
        settings
    }

    /// The rebuild jobs' step queue; page size and inline budget from the environment
    /// (`PROJECTION_REBUILD_PAGE_SIZE`, `PROJECTION_REBUILD_INLINE_SECS`). No API Gateway
    /// bounds a local request, so unless the budget is set a synchronous rebuild runs all
    /// its steps inline (5 minutes at most) however slow a busy emulator is.
    pub fn rebuild_settings(&self) -> event_adapters::operator::rebuild::RebuildSettings {
        use event_adapters::operator::rebuild::{RebuildSettings, INLINE_SECS_VAR};
        let mut settings = RebuildSettings::from_lookup(|k| match std::env::var(k) {
            Err(_) if k == INLINE_SECS_VAR => Some("300".into()),
            v => v.ok(),
        });
        settings.queue_url = Some(self.rebuild.queue_url.clone());
        settings.dlq_url = Some(self.rebuild.dlq_url.clone());
        settings
    }
}

/// The table is `<prefix>-events`, the queues `<prefix>-<domain>.fifo` and
/// `<prefix>-<domain>-dlq.fifo`, the deliveries' and the rebuild steps' queues
/// (`topology::delivery_queues`, `topology::rebuild_queues`).
pub async fn provision(clients: &Clients, prefix: &str) -> Result<Provisioned, String> {
    let table = format!("{prefix}-events");
    let table = table.as_str();
    let (stream_arn, indexes) = ensure_table(&clients.dynamodb, table).await?;
    ensure_indexes(&clients.dynamodb, table, &indexes).await?;
    wait_stream(&stream_arn).await?;
    let mut queues = Vec::new();
    for pair in topology::queues(prefix) {
        let urls = ensure_queues(&clients.sqs, &pair.queue, &pair.dlq, MAX_RECEIVE_COUNT).await?;
        queues.push(ProvisionedQueue {
            domain: pair.domain,
            queue_url: urls.queue_url,
            queue_arn: urls.queue_arn,
            dlq_url: urls.dlq_url,
        });
    }
    let (queue, dlq) = topology::delivery_queues(prefix);
    let delivery = ensure_queues(
        &clients.sqs,
        &queue,
        &dlq,
        topology::DELIVERY_MAX_RECEIVE_COUNT,
    )
    .await?;
    let subscription_key =
        ensure_key(&clients.kms, &topology::subscription_key_alias(prefix)).await?;
    let (queue, dlq) = topology::rebuild_queues(prefix);
    let rebuild = ensure_queues(&clients.sqs, &queue, &dlq, MAX_RECEIVE_COUNT).await?;
    Ok(Provisioned {
        table: table.to_string(),
        stream_arn,
        queues,
        delivery,
        subscription_key,
        rebuild,
    })
}

fn key(name: &str, kt: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .map_err(|e| e.to_string())
}

fn attr(name: &str, t: ScalarAttributeType) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .map_err(|e| e.to_string())
}

/// DescribeTable on the emulator takes longer the more indexes a table has (seconds per
/// index on a busy machine), beyond the SDK's usual 10 s per attempt: give it more time.
fn patient_timeouts() -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    aws_sdk_dynamodb::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(90))
            .operation_timeout(Duration::from_secs(120))
            .build(),
    )
}

/// One DescribeTable with [`patient_timeouts`].
async fn patient_describe(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<DescribeTableOutput, String> {
    ddb.describe_table()
        .table_name(table)
        .customize()
        .config_override(patient_timeouts())
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeTable: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })
}

/// The table's stream ARN and the names of its indexes, once it is active.
async fn ensure_table(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(String, Vec<String>), String> {
    let exists = ddb.describe_table().table_name(table).send().await.is_ok();
    if !exists {
        let mut req = ddb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(TABLE_KEYS.0, KeyType::Hash)?)
            .key_schema(key(TABLE_KEYS.1, KeyType::Range)?)
            .attribute_definitions(attr(TABLE_KEYS.0, ScalarAttributeType::S)?)
            .attribute_definitions(attr(TABLE_KEYS.1, ScalarAttributeType::N)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(STREAM_VIEW))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        let mut defined = vec![];
        for (name, pk, sk) in GSIS {
            for a in [pk, sk] {
                if !defined.contains(a) {
                    req = req.attribute_definitions(attr(a, ScalarAttributeType::S)?);
                    defined.push(a);
                }
            }
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(*name)
                    .key_schema(key(pk, KeyType::Hash)?)
                    .key_schema(key(sk, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(GSI_PROJECTION))
                            .build(),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        match req.send().await {
            Ok(_) => tracing::info!(table, "created table"),
            Err(e) => {
                let msg = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
                if !msg.contains("ResourceInUse") {
                    return Err(format!("CreateTable {table}: {msg}"));
                }
            }
        }
    }
    // Wait until the table is active and its stream enabled; earlier writes are not streamed.
    for attempt in 0..120 {
        let d = match patient_describe(ddb, table).await {
            Ok(d) => d,
            // A busy emulator can time a DescribeTable out (it is slower the more indexes a
            // table has): ask again, up to the loop's bound.
            Err(e) if attempt < 119 => {
                tracing::warn!(table, error = %e, "DescribeTable failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let t = d.table().ok_or("DescribeTable returned no table")?;
        if t.table_status() == Some(&TableStatus::Active) {
            if let Some(arn) = t.latest_stream_arn() {
                let indexes = t
                    .global_secondary_indexes()
                    .iter()
                    .filter_map(|g| g.index_name().map(str::to_string))
                    .collect();
                return Ok((arn.to_string(), indexes));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("table {table} did not become active with a stream"))
}

/// A table made before an index was added to [`GSIS`] (a kept LocalStack) gets it here,
/// one `UpdateTable` per index as DynamoDB requires, each waited for until active. Items
/// written before it are not in it. `existing` are the indexes the table already has.
async fn ensure_indexes(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    existing: &[String],
) -> Result<(), String> {
    for (name, pk, sk) in GSIS {
        if existing.iter().any(|e| e == name) {
            continue;
        }
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(*name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(GSI_PROJECTION))
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())?;
        ddb.update_table()
            .table_name(table)
            .attribute_definitions(attr(pk, ScalarAttributeType::S)?)
            .attribute_definitions(attr(sk, ScalarAttributeType::S)?)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await
            .map_err(|e| {
                format!(
                    "UpdateTable (add index {name}): {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        tracing::info!(table, index = *name, "added index");
        for _ in 0..120 {
            let d = patient_describe(ddb, table).await?;
            let active = d
                .table()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .any(|g| {
                    g.index_name() == Some(*name) && g.index_status() == Some(&IndexStatus::Active)
                });
            if active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// LocalStack feeds a table's stream through an emulated Kinesis stream that becomes active
/// a moment after the table reports its stream: writes made before that are never streamed
/// (seen as lost events under load). Wait until the stream hands out a shard iterator.
async fn wait_stream(arn: &str) -> Result<(), String> {
    use aws_sdk_dynamodbstreams::types::{ShardIteratorType, StreamStatus};
    let streams = aws_sdk_dynamodbstreams::Client::new(&event_adapters::config::aws_config().await);
    let mut last = String::from("no answer");
    for _ in 0..120 {
        match streams.describe_stream().stream_arn(arn).send().await {
            Ok(d) => {
                let desc = d.stream_description();
                let shard = desc
                    .filter(|d| d.stream_status() == Some(&StreamStatus::Enabled))
                    .and_then(|d| d.shards().first())
                    .and_then(|s| s.shard_id());
                if let Some(shard) = shard {
                    match streams
                        .get_shard_iterator()
                        .stream_arn(arn)
                        .shard_id(shard)
                        .shard_iterator_type(ShardIteratorType::Latest)
                        .send()
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            last =
                                aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string()
                        }
                    }
                } else {
                    last = format!("status {:?}", desc.and_then(|d| d.stream_status()));
                }
            }
            Err(e) => last = aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("stream {arn} did not become readable: {last}"))
}

/// The KMS key behind `alias` (LocalStack's KMS locally), created with the alias when it
/// does not exist yet; returns the alias.
async fn ensure_key(kms: &aws_sdk_kms::Client, alias: &str) -> Result<String, String> {
    if kms.describe_key().key_id(alias).send().await.is_ok() {
        return Ok(alias.to_string());
    }
    let key = kms
        .create_key()
        .description("signing secrets of subscriptions (local)")
        .send()
        .await
        .map_err(|e| format!("CreateKey: {}", aws_sdk_kms::error::DisplayErrorContext(&e)))?;
    let id = key
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .ok_or("CreateKey returned no key")?;
    match kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(&id)
        .send()
        .await
    {
        Ok(_) => tracing::info!(alias, "created KMS key"),
        // Another runner created it meanwhile: use theirs.
        Err(e)
            if aws_sdk_kms::error::DisplayErrorContext(&e)
                .to_string()
                .contains("AlreadyExists") => {}
        Err(e) => {
            return Err(format!(
                "CreateAlias {alias}: {}",
                aws_sdk_kms::error::DisplayErrorContext(&e)
            ))
        }
    }
    Ok(alias.to_string())
}

/// A FIFO queue `queue` redriving to its FIFO dead-letter queue `dlq` after
/// `max_receive_count` receives.
async fn ensure_queues(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    max_receive_count: u32,
) -> Result<QueueUrls, String> {
    let dlq_url = create_fifo_queue(
        sqs,
        dlq,
        &[(QueueAttributeName::MessageRetentionPeriod, "1209600".into())],
    )
    .await?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}).to_string();
    let queue_url = create_fifo_queue(
        sqs,
        queue,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_TIMEOUT_SECS.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    let queue_arn = queue_arn(sqs, &queue_url).await?;
    Ok(QueueUrls {
        queue_url,
        queue_arn,
        dlq_url,
    })
}

/// Create (or find, CreateQueue is idempotent for equal attributes) a FIFO queue.
async fn create_fifo_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, String> {
    let mut req = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true");
    for (k, v) in attributes {
        req = req.attributes(k.clone(), v);
    }
    req.send()
        .await
        .map_err(|e| {
            format!(
                "CreateQueue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?
        .queue_url
        .ok_or_else(|| format!("CreateQueue {name} returned no URL"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    queue_attributes(sqs, url, &[QueueAttributeName::QueueArn])
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| format!("no QueueArn for {url}"))
}

/// Some attributes of a queue.
pub async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    names: &[QueueAttributeName],
) -> Result<std::collections::HashMap<QueueAttributeName, String>, String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetQueueAttributes {url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.attributes.unwrap_or_default())
}

/// Delete the table and queues of a prefix (test clean-up), and the local stream
/// checkpoint of the table; missing ones are fine.
pub async fn teardown(clients: &Clients, prefix: &str) -> Result<(), String> {
    crate::checkpoint::remove(&format!("{prefix}-events"));
    let _ = clients
        .dynamodb
        .delete_table()
        .table_name(format!("{prefix}-events"))
        .send()
        .await;
    let names = topology::queues(prefix)
        .into_iter()
        .map(|p| (p.queue, p.dlq))
        .chain([
            topology::delivery_queues(prefix),
            topology::rebuild_queues(prefix),
        ]);
    for (queue, dlq) in names {
        for name in [&queue, &dlq] {
            if let Ok(out) = clients.sqs.get_queue_url().queue_name(name).send().await {
                if let Some(url) = out.queue_url() {
                    let _ = clients.sqs.delete_queue().queue_url(url).send().await;
                }
            }
        }
    }
    Ok(())
}
