//! The parts `serve` runs, shared with `load`: the ingest API (with the admin routes), the
//! stream mapping feeding dispatch, and the queue mappings feeding the domain runners, the
//! delivery function and the read-model rebuild steps.
//! Each part takes its own AWS clients, so `load` can count each part's calls apart.

use event_adapters::config::{Clients, Config, DomainQueues};
use event_adapters::functions;
use event_adapters::http::cursor::CursorKey;
use event_adapters::subscriptions::delivery::webhook_sender;
use event_adapters::subscriptions::egress;
use lending_events::Domain;
use tokio::task::JoinSet;

use crate::checkpoint::{self, StreamCheckpoint};
use crate::faults::{self, Faults};
use crate::provision::Provisioned;
use crate::settings::queue_concurrency;
use crate::{admin, pollers};

/// The function configuration for provisioned resources (tenant from `X-Tenant-Id`;
/// cursors signed with `CURSOR_SIGNING_KEY`, or the development key when it is unset).
pub fn config(resources: &Provisioned) -> Result<Config, String> {
    Ok(Config {
        table: resources.table.clone(),
        queues: resources
            .queues
            .iter()
            .map(|q| {
                (
                    q.domain,
                    DomainQueues {
                        queue_url: q.queue_url.clone(),
                        dlq_url: q.dlq_url.clone(),
                    },
                )
            })
            .collect(),
        tenant_from_header: true,
        cursor_key: CursorKey::from_env().map_err(|e| e.to_string())?,
        subscriptions: resources.subscription_settings(),
        rebuild: resources.rebuild_settings(),
    })
}

/// The ingest function's router plus the local admin routes.
pub fn api_router(config: &Config, clients: &Clients) -> Result<axum::Router, String> {
    let admin = admin::router(late_payments::Job::new(clients, &config.table));
    Ok(functions::ingest_router_with_egress(
        config,
        clients,
        admin::catalog()?,
        egress::local_policy().map_err(|e| e.to_string())?,
    )
    .merge(admin))
}

/// The DynamoDB stream mapping: dispatch with `clients`, stream reads with `streams`,
/// resuming from the table's checkpoint.
pub fn spawn_stream_poller(
    tasks: &mut JoinSet<()>,
    streams: aws_sdk_dynamodbstreams::Client,
    resources: &Provisioned,
    config: &Config,
    clients: &Clients,
) {
    let stream_arn = resources.stream_arn.clone();
    let dispatcher = faults::dispatcher(config, clients, &Faults::from_env());
    let checkpoint = StreamCheckpoint::load(checkpoint::path_for(&resources.table), &stream_arn);
    tasks.spawn(
        async move { pollers::poll_stream(streams, stream_arn, dispatcher, checkpoint).await },
    );
}

/// The SQS mappings: [`queue_concurrency`] pollers per domain queue, receiving and deleting
/// with `clients` (as the event source mapping would) and running the domain's handlers,
/// with the fault wrappers the `FAULT_*` variables ask for ([`crate::faults`]).
pub fn spawn_queue_pollers(
    tasks: &mut JoinSet<()>,
    resources: &Provisioned,
    config: &Config,
    clients: &Clients,
) {
    spawn_queue_pollers_with(tasks, resources, config, |_| clients.clone())
}

/// [`spawn_queue_pollers`] with each domain's runner on the clients `clients_of` gives it
/// (a load run counts the read model's calls apart from the domain handlers').
pub fn spawn_queue_pollers_with(
    tasks: &mut JoinSet<()>,
    resources: &Provisioned,
    config: &Config,
    clients_of: impl Fn(Domain) -> Clients,
) {
    // One set of fault settings for every domain: the crash counts all appends.
    let faults = Faults::from_env();
    for q in &resources.queues {
        let clients = clients_of(q.domain);
        let runner =
            std::sync::Arc::new(faults::domain_runner(q.domain, config, &clients, &faults));
        for _ in 0..queue_concurrency() {
            let (sqs, url, arn) = (
                clients.sqs.clone(),
                q.queue_url.clone(),
                q.queue_arn.clone(),
            );
            let consumer = std::sync::Arc::new(pollers::DomainConsumer {
                runner: runner.clone(),
                faults: faults.clone(),
            });
            tasks.spawn(async move { pollers::poll_queue(sqs, url, arn, consumer).await });
        }
    }
}

/// The delivery queue's mapping: [`queue_concurrency`] pollers feeding the delivery
/// function's runner (webhooks allowed by [`egress::local_policy`]).
pub fn spawn_delivery_pollers(
    tasks: &mut JoinSet<()>,
    resources: &Provisioned,
    config: &Config,
    clients: &Clients,
) -> Result<(), String> {
    let runner = std::sync::Arc::new(functions::delivery_runner(
        config,
        clients,
        webhook_sender(egress::local_policy().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
    ));
    for _ in 0..queue_concurrency() {
        let (sqs, url, arn) = (
            clients.sqs.clone(),
            resources.delivery.queue_url.clone(),
            resources.delivery.queue_arn.clone(),
        );
        let runner = runner.clone();
        tasks.spawn(async move { pollers::poll_queue(sqs, url, arn, runner).await });
    }
    Ok(())
}

/// The rebuild step queue's mapping: [`queue_concurrency`] pollers feeding the
/// projection-rebuild function's runner.
pub fn spawn_rebuild_pollers(
    tasks: &mut JoinSet<()>,
    resources: &Provisioned,
    config: &Config,
    clients: &Clients,
) -> Result<(), String> {
    let runner =
        std::sync::Arc::new(functions::rebuild_runner(config, clients).map_err(|e| e.to_string())?);
    for _ in 0..queue_concurrency() {
        let (sqs, url, arn) = (
            clients.sqs.clone(),
            resources.rebuild.queue_url.clone(),
            resources.rebuild.queue_arn.clone(),
        );
        let runner = runner.clone();
        tasks.spawn(async move { pollers::poll_queue(sqs, url, arn, runner).await });
    }
    Ok(())
}
