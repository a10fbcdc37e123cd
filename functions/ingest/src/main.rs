//! ingest: `POST /events` and the history route behind API Gateway.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_adapters::functions::run_ingest().await
}
