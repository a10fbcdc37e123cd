//! Wiring of each Lambda function, so every `main.rs` is one call. The same constructors
//! are used by the local runner, which is why they take a [`Config`] and [`Clients`].

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lending_events::handlers;
use lending_events::ingest::Limits;
use lending_events::routing::RoutingTable;

use crate::api::{self, Api, TenantSource};
use crate::config::{Clients, Config};
use crate::dispatch::Dispatcher;
use crate::publisher::QueuePublisher;
use crate::ledger::DynamoLedger;
use crate::runner::{BatchRunner, DomainQueueOps, Faults, RetryPolicy};
use crate::store::DynamoStore;

pub fn ingest_router(config: &Config, clients: &Clients) -> axum::Router {
    api::router(Api {
        store: DynamoStore::new(clients.dynamodb.clone(), &config.table),
        limits: Limits::default(),
        tenant_source: if config.tenant_from_header {
            TenantSource::Header
        } else {
            TenantSource::Authorizer
        },
    })
}

pub fn dispatcher(config: &Config, clients: &Clients) -> Dispatcher {
    Dispatcher::new(
        QueuePublisher::new(clients.sqs.clone()),
        RoutingTable::standard(),
        config.clone(),
    )
}

/// The domain runner with its DynamoDB store and ledger, queues, and retry policy and
/// fault hooks from the environment.
pub fn domain_runner(
    domain: &str,
    config: &Config,
    clients: &Clients,
) -> BatchRunner<DynamoStore, DynamoLedger> {
    let queues = DomainQueueOps {
        client: clients.sqs.clone(),
        queue_url: config.queue_url(domain).map(str::to_string),
        dlq_url: config.dlq_url(domain).map(str::to_string),
    };
    BatchRunner::new(
        DynamoStore::new(clients.dynamodb.clone(), &config.table),
        DynamoLedger::new(clients.dynamodb.clone(), &config.table),
        handlers::for_domain(domain),
        Some(queues),
        RetryPolicy::from_env(),
        Faults::from_env(),
    )
}

/// `main` of the ingest function.
pub async fn run_ingest() -> Result<(), Error> {
    crate::telemetry::init();
    let router = ingest_router(&Config::from_env()?, &Clients::from_env().await);
    lambda_http::run(router).await
}

/// `main` of the dispatch function (DynamoDB stream event source).
pub async fn run_dispatch() -> Result<(), Error> {
    crate::telemetry::init();
    let dispatcher = dispatcher(&Config::from_env()?, &Clients::from_env().await);
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, Error>(dispatcher.handle(e.payload).await)
        },
    ))
    .await
}

/// `main` of a domain function (SQS event source with ReportBatchItemFailures).
pub async fn run_domain(domain: &str) -> Result<(), Error> {
    crate::telemetry::init();
    let runner = domain_runner(domain, &Config::from_env()?, &Clients::from_env().await);
    let runner = &runner;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            // Processing leases end when this invocation must have answered.
            let lease = e
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Ok::<_, Error>(runner.handle(e.payload, lease).await)
        },
    ))
    .await
}
