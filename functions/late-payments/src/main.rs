//! late-payments: the daily job (EventBridge Scheduler). Input `{"asOf": "YYYY-MM-DD",
//! "tenant": "..."}`, both optional; default: the schedule's date (or today), all tenants.
#![recursion_limit = "256"] // the SDK futures are deep
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    late_payments::run_lambda().await
}
