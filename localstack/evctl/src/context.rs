//! What every command works with: the HTTP client, the names of the table and queues, who
//! acts, how to print; and the AWS clients of the direct commands.

use event_adapters::operator::Actor;
use event_adapters::store::DynamoStore;
use serde_json::Value;

use crate::args::Args;
use crate::error::{Fail, Res};
use crate::http_client::HttpApi;
use crate::output::{self, Text};

pub struct Ctx {
    pub json: bool,
    pub api: HttpApi,
    pub prefix: String,
    pub table: String,
    /// The tenant the direct commands act for (None: a platform operator, every tenant).
    pub tenant: Option<String>,
    /// The principal the direct commands' `Ops.*` events name.
    pub principal: String,
}

impl Ctx {
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            tenant: self.tenant.as_deref(),
            principal: &self.principal,
        }
    }
}

/// `evctl:<who>`: who from --principal, else the login name. The `evctl:` prefix keeps a
/// self-declared name apart from the principals the API authenticates.
pub fn evctl_principal(a: &Args) -> String {
    let who = a
        .flag("--principal")
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("evctl:{who}")
}

/// Print a command's result: the JSON with --json, else the human text `human` writes.
pub fn out(ctx: &Ctx, v: &Value, human: impl FnOnce(&mut Text)) -> Res<()> {
    if ctx.json {
        return output::stdout(&format!("{v}\n"));
    }
    let mut text = Text::default();
    human(&mut text);
    output::stdout(text.as_str())
}

pub struct Aws {
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The events table, where the `Ops.*` records go.
    pub store: DynamoStore,
}

/// The AWS clients, once the configuration has what a call needs. Without credentials or a
/// region the SDK would fail on the first call with a long dump about the instance metadata
/// service (its last resort for credentials); one sentence naming the variables helps more.
pub async fn aws(ctx: &Ctx) -> Res<Aws> {
    use aws_sdk_sqs::config::ProvideCredentials;
    let sdk = event_adapters::config::aws_config().await;
    let credentials = match sdk.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    };
    let region = sdk.region().is_some();
    let missing = match (credentials, region) {
        (true, true) => None,
        (false, true) => Some((
            "credentials",
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )),
        (true, false) => Some(("region", "AWS_REGION")),
        (false, false) => Some((
            "credentials or region",
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, AWS_REGION",
        )),
    };
    if let Some((what, set)) = missing {
        return Err(Fail::unreachable(format!(
            "no AWS {what}: set {set}, and AWS_ENDPOINT_URL for LocalStack (`. localstack/env.sh`)"
        )));
    }
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Aws {
        store: DynamoStore::new(ddb.clone(), &ctx.table),
        ddb,
        sqs: aws_sdk_sqs::Client::new(&sdk),
    })
}
