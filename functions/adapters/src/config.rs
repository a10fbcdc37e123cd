//! Configuration from the environment, and AWS clients built once per process.
//!
//! | variable | meaning |
//! |---|---|
//! | `EVENTS_TABLE` | the event-history table |
//! | `QUEUE_URL_<DOMAIN>` | a domain's FIFO queue (dispatch) |
//! | `DLQ_URL_<DOMAIN>` | a domain's FIFO dead-letter queue (domain handlers) |
//! | `TENANT_FROM_HEADER` | `1`: read the tenant from `X-Tenant-Id` (local only; on AWS the tenant comes from the authorizer) |
//! | `CURSOR_SIGNING_KEY` | the key pagination cursors are signed with, at least 32 bytes ([`crate::http::cursor`]); unset: a fixed development key (local only) |
//! | `PROJECTION_REBUILD_*` | the read-model rebuild jobs' step queue, page size and inline budget ([`crate::operator::rebuild`]) |
//! | `AWS_ENDPOINT_URL` | LocalStack or another emulator |
//! | `AWS_CALL_COUNTS` | `1`: count every AWS API call per operation ([`call_counts`]; measurement only, off in production) |

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use aws_config::BehaviorVersion;
/// Re-exported so callers of [`Clients::counting_as`] need no `aws-config` of their own.
pub use aws_config::SdkConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use lending_events::Domain;

use crate::error::AdapterError;
use crate::http::cursor::{CursorKey, CURSOR_SIGNING_KEY_VAR};
use crate::operator::rebuild::RebuildSettings;
use crate::subscriptions::SubscriptionSettings;

pub mod capacity;

/// The queues of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainQueues {
    pub queue_url: String,
    pub dlq_url: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub queues: BTreeMap<Domain, DomainQueues>,
    pub tenant_from_header: bool,
    /// Signs and checks the pagination cursors of the read routes.
    pub cursor_key: CursorKey,
    /// The delivery queues and the secrets key of subscriptions.
    pub subscriptions: SubscriptionSettings,
    /// The read-model rebuild jobs: their step queue and page size.
    pub rebuild: RebuildSettings,
}

/// The variable naming the event-history table.
pub const EVENTS_TABLE_VAR: &str = "EVENTS_TABLE";
/// The variable switching the tenant source to the `X-Tenant-Id` header (`1`).
pub const TENANT_FROM_HEADER_VAR: &str = "TENANT_FROM_HEADER";
/// The variable pointing the SDK at an emulator.
pub const ENDPOINT_URL_VAR: &str = "AWS_ENDPOINT_URL";
/// What the AWS SDK takes from the environment besides the endpoint: region and
/// credentials (its default chain), as `localstack/env.sh` sets them.
pub const SDK_VARS: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// The variable holding a domain's queue URL, e.g. `QUEUE_URL_PAYMENT`.
pub fn queue_url_var(domain: Domain) -> String {
    format!("QUEUE_URL_{}", domain.as_str().to_ascii_uppercase())
}

/// The variable holding a domain's dead-letter queue URL, e.g. `DLQ_URL_PAYMENT`.
pub fn dlq_url_var(domain: Domain) -> String {
    format!("DLQ_URL_{}", domain.as_str().to_ascii_uppercase())
}

impl Config {
    /// Read what the function needs. Domain queues are optional: a function only reads
    /// the ones it was given.
    pub fn from_env() -> Result<Config, AdapterError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with the variables looked up through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, AdapterError> {
        let table = var(EVENTS_TABLE_VAR)
            .ok_or_else(|| AdapterError::Config(format!("{EVENTS_TABLE_VAR} is not set")))?;
        let mut queues = BTreeMap::new();
        for domain in lending_events::routing::RoutingTable::standard().domains() {
            let q = var(&queue_url_var(domain)).unwrap_or_default();
            let d = var(&dlq_url_var(domain)).unwrap_or_default();
            if !q.is_empty() || !d.is_empty() {
                queues.insert(
                    domain,
                    DomainQueues {
                        queue_url: q,
                        dlq_url: d,
                    },
                );
            }
        }
        Ok(Config {
            table,
            queues,
            tenant_from_header: var(TENANT_FROM_HEADER_VAR).is_some_and(|v| v == "1"),
            cursor_key: CursorKey::from_setting(var(CURSOR_SIGNING_KEY_VAR))?,
            subscriptions: SubscriptionSettings::from_lookup(&var),
            rebuild: RebuildSettings::from_lookup(&var),
        })
    }

    /// The variables [`Config::from_env`] reads back as this configuration: the table,
    /// both queue URLs of every domain it has, and the tenant source.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![(EVENTS_TABLE_VAR.to_string(), self.table.clone())];
        for (domain, q) in &self.queues {
            vars.push((queue_url_var(*domain), q.queue_url.clone()));
            vars.push((dlq_url_var(*domain), q.dlq_url.clone()));
        }
        let tenant_from_header = if self.tenant_from_header { "1" } else { "0" };
        vars.push((
            TENANT_FROM_HEADER_VAR.to_string(),
            tenant_from_header.to_string(),
        ));
        vars.extend(self.subscriptions.to_env());
        vars.extend(self.rebuild.to_env());
        vars
    }

    pub fn queue_url(&self, domain: Domain) -> Option<&str> {
        self.queues
            .get(&domain)
            .map(|q| q.queue_url.as_str())
            .filter(|u| !u.is_empty())
    }

    pub fn dlq_url(&self, domain: Domain) -> Option<&str> {
        self.queues
            .get(&domain)
            .map(|q| q.dlq_url.as_str())
            .filter(|u| !u.is_empty())
    }
}

/// The SDK configuration: rustls with ring (no C toolchain, small binary), region and
/// credentials from the usual chain, and `AWS_ENDPOINT_URL` honoured for LocalStack.
pub async fn aws_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    // The SDK waits forever for a response by default; a hung connection would then hang
    // a whole batch. Bounded attempts turn it into a transient error that is retried.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(10))
        .operation_timeout(std::time::Duration::from_secs(30))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts);
    if let Ok(url) = std::env::var(ENDPOINT_URL_VAR) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The AWS clients a function uses, built once at cold start (no network call until the
/// first request).
#[derive(Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Encrypts subscriptions' signing secrets.
    pub kms: aws_sdk_kms::Client,
}

impl Clients {
    /// The clients; with `AWS_CALL_COUNTS=1` they count their calls ([`Clients::counting`]).
    pub async fn from_env() -> Clients {
        let sdk = aws_config().await;
        if std::env::var("AWS_CALL_COUNTS").is_ok_and(|v| v == "1") {
            return Clients::counting(&sdk);
        }
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            kms: aws_sdk_kms::Client::new(&sdk),
        }
    }

    /// Clients that count every HTTP attempt per operation into [`call_counts`] (retries
    /// included: each attempt is a billed request). For measurements; production clients
    /// are built without the interceptor.
    pub fn counting(sdk: &SdkConfig) -> Clients {
        Clients::counting_as(sdk, "")
    }

    /// Counting clients whose calls are also kept apart under `label`
    /// ([`call_counts_for`]): one set per part of a process (ingest, dispatch, handlers)
    /// tells which part made which calls.
    pub fn counting_as(sdk: &SdkConfig, label: &'static str) -> Clients {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(CallCounter::labelled(label))
            .interceptor(capacity::CapacityMeter::labelled(label))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(CallCounter::labelled(label))
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            kms: aws_sdk_kms::Client::new(sdk),
        }
    }
}

/// Calls per operation (`DynamoDB.TransactWriteItems`, `SQS.SendMessageBatch`, ...) made by
/// counting clients in this process, since the start or the last [`reset_call_counts`].
pub fn call_counts() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((_, op), n) in counts().lock().unwrap_or_else(|p| p.into_inner()).iter() {
        *out.entry(op.clone()).or_default() += n;
    }
    out
}

/// Like [`call_counts`], for the clients built with [`Clients::counting_as`] this label.
pub fn call_counts_for(label: &str) -> BTreeMap<String, u64> {
    counts()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|((l, _), _)| *l == label)
        .map(|((_, op), n)| (op.clone(), *n))
        .collect()
}

pub fn reset_call_counts() {
    counts().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

type Counts = BTreeMap<(&'static str, String), u64>;

fn counts() -> &'static Mutex<Counts> {
    static COUNTS: OnceLock<Mutex<Counts>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// An SDK interceptor that counts each transmitted request by its operation: the
/// `X-Amz-Target` header of the JSON protocols (DynamoDB, DynamoDB Streams, and SQS since
/// its JSON protocol). Public so other SDK clients of the same process (a streams client)
/// can count into the same table.
#[derive(Debug)]
pub struct CallCounter {
    label: &'static str,
}

impl CallCounter {
    pub fn labelled(label: &'static str) -> CallCounter {
        CallCounter { label }
    }
}

impl aws_sdk_dynamodb::config::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown.Unknown");
        let op = match target.split_once('.') {
            Some((svc, op)) if svc.starts_with("DynamoDBStreams") => format!("Streams.{op}"),
            Some((svc, op)) if svc.starts_with("DynamoDB") => format!("DynamoDB.{op}"),
            Some((svc, op)) if svc.contains("SQS") => format!("SQS.{op}"),
            Some((svc, op)) => format!("{svc}.{op}"),
            None => target.to_string(),
        };
        *counts()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((self.label, op))
            .or_default() += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_env_reads_back_as_the_same_config() {
        let domains: Vec<Domain> = lending_events::routing::RoutingTable::standard()
            .domains()
            .collect();
        let config = Config {
            table: "dev-events".into(),
            queues: domains
                .iter()
                .map(|d| {
                    (
                        *d,
                        DomainQueues {
                            queue_url: format!("http://q/{d}.fifo"),
                            dlq_url: format!("http://q/{d}-dlq.fifo"),
                        },
                    )
                })
                .collect(),
            tenant_from_header: false,
            cursor_key: CursorKey::development(),
            subscriptions: SubscriptionSettings::default(),
            rebuild: RebuildSettings {
                queue_url: Some("http://q/rebuild.fifo".into()),
                dlq_url: Some("http://q/rebuild-dlq.fifo".into()),
                page_size: 7,
                ..RebuildSettings::default()
            },
        };
        let vars: BTreeMap<String, String> = config.to_env().into_iter().collect();
        // The table, two queues per domain, the tenant source and the rebuild's four.
        assert_eq!(vars.len(), 2 + 2 * domains.len() + 4);
        let back = Config::from_lookup(|name| vars.get(name).cloned()).expect("config");
        assert_eq!(back.table, config.table);
        assert_eq!(back.queues, config.queues);
        assert_eq!(back.rebuild, config.rebuild);
        assert!(!back.tenant_from_header);

        let header = Config {
            tenant_from_header: true,
            ..config
        };
        let vars: BTreeMap<String, String> = header.to_env().into_iter().collect();
        assert!(
            Config::from_lookup(|name| vars.get(name).cloned())
                .expect("config")
                .tenant_from_header
        );
    }
}
