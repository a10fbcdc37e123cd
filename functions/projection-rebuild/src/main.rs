//! projection-rebuild: the read-model rebuild jobs' SQS consumer (one bounded step a message).
#![recursion_limit = "256"] // the SDK futures nested in the step runner are deep

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    event_adapters::functions::run_projection_rebuild().await
}
