//! projection-handler: the read models' SQS consumer (keeps loan summaries current).
#![recursion_limit = "256"] // the SDK futures nested in the batch runner are deep
use event_adapters::functions::Domain;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_adapters::functions::run_domain(Domain::Projection).await
}
