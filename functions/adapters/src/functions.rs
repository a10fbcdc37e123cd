//! Wiring of each Lambda function, so every `main.rs` is one call. The same constructors
//! are used by the local runner, which is why they take a [`Config`] and [`Clients`].

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lending_events::catalog::Catalog;
use lending_events::handlers::{self, HandlerConfig};
use lending_events::routing::RoutingTable;
/// The domain a domain function serves: its `main` names one, e.g. [`Domain::Payment`].
pub use lending_events::Domain;

use crate::config::{Clients, Config};
use crate::dispatch::Dispatcher;
use crate::error::AdapterError;
use crate::ledger::DynamoLedger;
use crate::operator::rebuild::{DynamoRebuild, RebuildQueue, RebuildRunner};
use crate::queue::{Publisher, QueuePublisher, SqsDomainQueue};
use crate::runner::{BatchRunner, RetryPolicy};
use crate::store::DynamoStore;
use crate::subscriptions::delivery::{DeliveryRunner, DeliverySettings, WebhookPort};
use crate::subscriptions::deliverylog::DeliveryLog;
use crate::subscriptions::egress::EgressPolicy;
use crate::subscriptions::matching::SubscriptionMatcher;
use crate::subscriptions::repo::SubscriptionStore;
use crate::subscriptions::secrets::SecretBox;

/// The HTTP API over the events table ([`crate::http::router`]); `catalog` is what ingest
/// accepts (see [`catalog_from_env`]).
pub fn ingest_router(config: &Config, clients: &Clients, catalog: Catalog) -> axum::Router {
    crate::http::router(config, clients, catalog)
}

/// [`ingest_router`] with the webhook targets that `egress` allows (the local runner allows
/// loopback).
pub fn ingest_router_with_egress(
    config: &Config,
    clients: &Clients,
    catalog: Catalog,
    egress: EgressPolicy,
) -> axum::Router {
    crate::http::api::router_with_egress(config, clients, catalog, egress)
}

/// Custom event types from `CUSTOM_EVENT_TYPES`: the JSON document itself (a value starting
/// with `{`), or the path of a file holding it. `None` when the variable is unset or empty.
/// A document that does not parse is an error: the function must not start without the
/// types its clients rely on.
pub fn catalog_from_env() -> Result<Option<Catalog>, AdapterError> {
    let Some(value) = std::env::var("CUSTOM_EVENT_TYPES")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let text = if value.trim_start().starts_with('{') {
        value
    } else {
        std::fs::read_to_string(value.trim()).map_err(|e| {
            AdapterError::Config(format!("CUSTOM_EVENT_TYPES: cannot read {value}: {e}"))
        })?
    };
    let catalog = Catalog::with_custom_json(&text)
        .map_err(|e| AdapterError::Config(format!("CUSTOM_EVENT_TYPES: {e} ({e:?})")))?;
    tracing::info!(
        custom_types = catalog.custom().len(),
        "custom event types loaded"
    );
    Ok(Some(catalog))
}

/// Handler settings from the environment: `CLOSING_DOCUMENTS` (comma-separated document
/// types the compliance handler generates on funding).
pub fn handler_config_from_env() -> Result<HandlerConfig, AdapterError> {
    let config = HandlerConfig::default();
    match std::env::var("CLOSING_DOCUMENTS") {
        Ok(list) if !list.trim().is_empty() => config
            .with_closing_documents(&list)
            .map_err(|e| AdapterError::Config(e.to_string())),
        _ => Ok(config),
    }
}

/// Dispatch to the domain queues and, when a delivery queue is configured, to the
/// subscriptions.
pub fn dispatcher(config: &Config, clients: &Clients) -> Dispatcher {
    dispatcher_over(QueuePublisher::new(clients.sqs.clone()), config, clients)
}

/// Dispatch over any publisher (the local runner wraps it with its fault hooks), matching
/// subscriptions when the delivery queue is configured.
pub fn dispatcher_over<P: Publisher>(
    publisher: P,
    config: &Config,
    clients: &Clients,
) -> Dispatcher<P> {
    let dispatcher = Dispatcher::new(publisher, RoutingTable::standard(), config.clone());
    match &config.subscriptions.delivery_queue_url {
        Some(url) => dispatcher.with_subscriptions(
            SubscriptionMatcher::new(
                SubscriptionStore::new(DynamoStore::new(clients.dynamodb.clone(), &config.table)),
                SubscriptionMatcher::ttl_from_env(),
            ),
            url.clone(),
        ),
        None => dispatcher,
    }
}

/// A domain function's runner on AWS: DynamoDB store and ledger, SQS queue and DLQ.
pub type DomainRunner = BatchRunner<DynamoStore, DynamoLedger, SqsDomainQueue>;

/// The domain's queue and DLQ on SQS.
pub fn domain_queue(domain: Domain, config: &Config, clients: &Clients) -> SqsDomainQueue {
    SqsDomainQueue {
        client: clients.sqs.clone(),
        queue_url: config.queue_url(domain).map(str::to_string),
        dlq_url: config.dlq_url(domain).map(str::to_string),
    }
}

/// The domain's handlers, configured from the environment (validated at start by
/// run_domain and the local runner; the defaults otherwise).
pub fn domain_handlers(domain: Domain) -> Vec<handlers::BoxedHandler> {
    handlers::for_domain(domain, &handler_config_from_env().unwrap_or_default())
}

/// The domain runner with its DynamoDB store and ledger, its SQS queues, and the retry
/// policy from the environment.
pub fn domain_runner(domain: Domain, config: &Config, clients: &Clients) -> DomainRunner {
    let store = DynamoStore::new(clients.dynamodb.clone(), &config.table);
    BatchRunner::new(
        store.clone(),
        DynamoLedger::over(store),
        domain_handlers(domain),
        domain_queue(domain, config, clients),
        RetryPolicy::from_env(),
    )
}

/// The delivery function's runner: subscriptions, secrets, the delivery log, the delivery
/// queue and its dead letters from `config`; webhooks sent with `webhooks`.
pub fn delivery_runner<W: WebhookPort>(
    config: &Config,
    clients: &Clients,
    webhooks: W,
) -> DeliveryRunner<W> {
    DeliveryRunner::new(
        SubscriptionStore::new(DynamoStore::new(clients.dynamodb.clone(), &config.table)),
        SecretBox::new(clients.kms.clone(), config.subscriptions.key_id.clone()),
        DeliveryLog::new(
            clients.dynamodb.clone(),
            &config.table,
            config.cursor_key.clone(),
        ),
        webhooks,
        clients.sqs.clone(),
        config.subscriptions.delivery_queue_url.clone(),
        config.subscriptions.delivery_dlq_url.clone(),
        DeliverySettings::from_env(),
    )
}

/// `main` of the delivery function (SQS event source on the delivery queue).
pub async fn run_delivery() -> Result<(), Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    let runner = delivery_runner(
        &config,
        &Clients::from_env().await,
        crate::subscriptions::delivery::webhook_sender(
            crate::subscriptions::egress::policy_from_env()?,
        )?,
    );
    let runner = &runner;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, Error>(runner.handle(e.payload).await)
        },
    ))
    .await
}

/// The rebuild function's runner: job steps over the event table, successors sent to the
/// step queue of `config` (`PROJECTION_REBUILD_QUEUE_URL`, required).
pub fn rebuild_runner(config: &Config, clients: &Clients) -> Result<RebuildRunner, AdapterError> {
    let queue_url = config.rebuild.queue_url.clone().ok_or_else(|| {
        AdapterError::Config(format!(
            "{} is not set",
            crate::operator::rebuild::QUEUE_URL_VAR
        ))
    })?;
    Ok(RebuildRunner {
        port: DynamoRebuild::new(DynamoStore::new(clients.dynamodb.clone(), &config.table)),
        queue: RebuildQueue {
            client: clients.sqs.clone(),
            queue_url,
        },
        dlq_url: config.rebuild.dlq_url.clone(),
        max_receives: crate::topology::MAX_RECEIVE_COUNT,
    })
}

/// `main` of the projection-rebuild function (SQS event source on the rebuild step queue,
/// with ReportBatchItemFailures).
pub async fn run_projection_rebuild() -> Result<(), Error> {
    crate::telemetry::init();
    let runner = rebuild_runner(&Config::from_env()?, &Clients::from_env().await)?;
    let runner = &runner;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, Error>(runner.handle(e.payload).await)
        },
    ))
    .await
}

/// `main` of the ingest function.
pub async fn run_ingest() -> Result<(), Error> {
    crate::telemetry::init();
    let catalog = catalog_from_env()?.unwrap_or_default();
    let config = Config::from_env()?;
    crate::subscriptions::egress::policy_from_env()?;
    if config.cursor_key.is_development() && !config.tenant_from_header {
        tracing::warn!(
            "CURSOR_SIGNING_KEY is not set: cursors are signed with the public development key"
        );
    }
    let router = ingest_router(&config, &Clients::from_env().await, catalog);
    // Behind a named stage the path carries it (`/prod/events`): off before routing.
    crate::http::lambda::run(
        tower::ServiceBuilder::new()
            .map_request(crate::http::stage::strip)
            .service(router),
    )
    .await
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
pub async fn run_domain(domain: Domain) -> Result<(), Error> {
    crate::telemetry::init();
    handler_config_from_env()?;
    let runner = std::sync::Arc::new(domain_runner(
        domain,
        &Config::from_env()?,
        &Clients::from_env().await,
    ));
    // Statistics gathered since the last flush are written when the instance shuts down.
    let flushing = runner.clone();
    on_shutdown(move || async move { flushing.flush_stats().await }).await;
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

/// Run `hook` when Lambda shuts this instance down, then exit. Lambda sends SIGTERM (and
/// waits up to 500 ms) only to a function with an extension registered: this registers an
/// internal one that subscribes to nothing. Where there is no extensions API (an emulator
/// without it) the hook is never run, which is logged; the function runs on. Call it before
/// `lambda_runtime::run`, which ends the init phase.
pub async fn on_shutdown<F, Fut>(hook: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::signal::unix::{signal, SignalKind};
    let registered = lambda_extension::Extension::new()
        .with_events(&[])
        .with_extension_name("_lending-events-shutdown")
        .register()
        .await;
    let extension = match registered {
        Ok(extension) => extension,
        Err(e) => {
            tracing::warn!(error = %e, "no shutdown hook: the extension did not register");
            return;
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("no shutdown hook: signals cannot be watched");
        return;
    };
    tokio::spawn(async move {
        let signalled = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            hook().await;
            std::process::exit(0);
        };
        // The extension only has to stay connected; its end (or error) changes nothing.
        let _ = tokio::join!(signalled, extension.run());
    });
}
