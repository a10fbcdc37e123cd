//! Configuration from the environment, and AWS clients built once per process.
//!
//! | variable | meaning |
//! |---|---|
//! | `EVENTS_TABLE` | the event-history table |
//! | `QUEUE_URL_<DOMAIN>` | a domain's FIFO queue (dispatch) |
//! | `DLQ_URL_<DOMAIN>` | a domain's FIFO dead-letter queue (domain handlers) |
//! | `TENANT_FROM_HEADER` | `1`: read the tenant from `X-Tenant-Id` (local only; on AWS the tenant comes from the authorizer) |
//! | `AWS_ENDPOINT_URL` | LocalStack or another emulator |

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::error::AdapterError;

/// The queues of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainQueues {
    pub queue_url: String,
    pub dlq_url: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub queues: BTreeMap<String, DomainQueues>,
    pub tenant_from_header: bool,
}

impl Config {
    /// Read what the function needs. Domain queues are optional: a function only reads
    /// the ones it was given.
    pub fn from_env() -> Result<Config, AdapterError> {
        let table = std::env::var("EVENTS_TABLE")
            .map_err(|_| AdapterError::Config("EVENTS_TABLE is not set".into()))?;
        let mut queues = BTreeMap::new();
        for domain in lending_events::routing::RoutingTable::standard().domains() {
            let up = domain.to_ascii_uppercase();
            let q = std::env::var(format!("QUEUE_URL_{up}")).unwrap_or_default();
            let d = std::env::var(format!("DLQ_URL_{up}")).unwrap_or_default();
            if !q.is_empty() || !d.is_empty() {
                queues.insert(
                    domain.to_string(),
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
            tenant_from_header: std::env::var("TENANT_FROM_HEADER").is_ok_and(|v| v == "1"),
        })
    }

    pub fn queue_url(&self, domain: &str) -> Option<&str> {
        self.queues
            .get(domain)
            .map(|q| q.queue_url.as_str())
            .filter(|u| !u.is_empty())
    }

    pub fn dlq_url(&self, domain: &str) -> Option<&str> {
        self.queues
            .get(domain)
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
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
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
}

impl Clients {
    pub async fn from_env() -> Clients {
        let sdk = aws_config().await;
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
        }
    }
}
