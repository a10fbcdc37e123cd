//! dispatch: DynamoDB stream records of the event table to the domain queues.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_adapters::functions::run_dispatch().await
}
