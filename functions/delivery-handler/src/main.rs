//! delivery-handler: the delivery queue's SQS consumer (webhooks and SQS targets of
//! subscriptions).
#![recursion_limit = "256"] // the SDK futures nested in the batch runner are deep
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_adapters::functions::run_delivery().await
}
