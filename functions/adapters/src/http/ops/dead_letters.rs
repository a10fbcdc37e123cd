//! The dead-letter routes (scope `ops:dead-letters`), over [`crate::operator`]:
//!
//! | route | answer |
//! |---|---|
//! | `GET /dead-letters?domain=` | `{"deadLetters": [{"domain", "queue", "count", "messages"}]}`: the caller's tenant's messages only |
//! | `POST /dead-letters/{domain}/redrive` | body `{"all": true}` or `{"eventIds": [...]}`; `{"redriven", "eventIds"}` |
//! | `POST /dead-letters/{domain}/purge` | body as redrive; `{"purged", "eventIds"}` |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lending_events::Domain;
use serde::Deserialize;
use serde_json::json;

use super::Ops;
use crate::http::auth::{admitted, Principal};
use crate::http::error::ApiError;
use crate::http::request::json_body;
use crate::operator::dead_letters::DeadLetter;
use crate::operator::{
    list_dead_letters, purge_dead_letters, queue_name, redrive_dead_letters, Actor,
};
use crate::store::DynamoStore;

/// The caller acting for its own tenant.
fn actor(p: &Principal) -> Actor<'_> {
    Actor {
        tenant: Some(&p.tenant),
        principal: &p.subject,
    }
}

/// The domain a request names (`?domain=` or the path): 400 (field `domain`) with the
/// known domains when there is no such domain.
fn requested_domain(text: &str) -> Result<Domain, ApiError> {
    Ok(text.parse::<Domain>()?)
}

/// `(dlq url, source url)` of a domain with queues configured.
fn domain_queues(ops: &Ops, domain: Domain) -> Result<(&str, &str), ApiError> {
    match (ops.config.dlq_url(domain), ops.config.queue_url(domain)) {
        (Some(dlq), Some(source)) => Ok((dlq, source)),
        _ => Err(ApiError::not_found(format!(
            "no dead-letter queue for domain {:?}; domains: {}",
            domain.as_str(),
            ops.config
                .queues
                .keys()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(crate) async fn get_dead_letters(
    State(ops): State<Arc<Ops>>,
    query: Result<Query<BTreeMap<String, String>>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let p = admitted(&req)?;
    let Query(q) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let domains: Vec<Domain> = match q.get("domain") {
        Some(d) => {
            let d = requested_domain(d)?;
            domain_queues(&ops, d)?;
            vec![d]
        }
        None => ops.config.queues.keys().copied().collect(),
    };
    let store = DynamoStore::new(ops.dynamodb.clone(), &ops.config.table);
    let actor = actor(&p);
    let mut out = Vec::new();
    for d in domains {
        let (dlq, _) = domain_queues(&ops, d)?;
        let letters = list_dead_letters(&ops.sqs, &store, actor, d, dlq, 1000).await?;
        out.push(
            json!({"domain": d, "queue": queue_name(dlq), "count": letters.len(),
            "messages": letters}),
        );
    }
    Ok(Json(json!({ "deadLetters": out })).into_response())
}

/// Which dead letters a redrive or purge takes: every one of the tenant's, or these events.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selection {
    #[serde(default)]
    all: bool,
    event_ids: Option<Vec<String>>,
}

async fn selection(req: Request) -> Result<Selection, ApiError> {
    let s: Selection =
        json_body(req, 64 * 1024, "{\"all\": true} or {\"eventIds\": [...]}").await?;
    match (&s.all, &s.event_ids) {
        (true, None) => Ok(s),
        (false, Some(ids)) if !ids.is_empty() => Ok(s),
        _ => Err(ApiError::bad(
            "eventIds",
            "give either \"all\": true or a non-empty \"eventIds\" list",
        )),
    }
}

fn picks(s: &Selection, l: &DeadLetter) -> bool {
    s.all
        || s.event_ids
            .as_ref()
            .is_some_and(|ids| l.event_id.as_ref().is_some_and(|e| ids.contains(e)))
}

fn event_ids(letters: &[DeadLetter]) -> Vec<&str> {
    letters
        .iter()
        .map(|l| l.event_id.as_deref().unwrap_or(&l.message_id))
        .collect()
}

/// What a redrive or purge acts on: the caller, the domain's dead-letter and source queues,
/// the selection and the store that records the action.
struct DeadLetterAction<'a> {
    principal: Principal,
    domain: Domain,
    dlq: &'a str,
    source: &'a str,
    selection: Selection,
    store: DynamoStore,
}

async fn dead_letter_action<'a>(
    ops: &'a Ops,
    domain: &str,
    req: Request,
) -> Result<DeadLetterAction<'a>, ApiError> {
    let principal = admitted(&req)?;
    let domain = requested_domain(domain)?;
    let (dlq, source) = domain_queues(ops, domain)?;
    Ok(DeadLetterAction {
        principal,
        domain,
        dlq,
        source,
        selection: selection(req).await?,
        store: DynamoStore::new(ops.dynamodb.clone(), &ops.config.table),
    })
}

pub(crate) async fn post_redrive(
    State(ops): State<Arc<Ops>>,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let a = dead_letter_action(&ops, &domain, req).await?;
    let done = redrive_dead_letters(
        &ops.sqs,
        &a.store,
        actor(&a.principal),
        a.domain,
        a.dlq,
        Some(a.source),
        |l| picks(&a.selection, l),
    )
    .await?;
    Ok(Json(json!({"redriven": done.len(), "eventIds": event_ids(&done)})).into_response())
}

pub(crate) async fn post_purge(
    State(ops): State<Arc<Ops>>,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let a = dead_letter_action(&ops, &domain, req).await?;
    let done = purge_dead_letters(
        &ops.sqs,
        &a.store,
        actor(&a.principal),
        a.domain,
        a.dlq,
        |l| picks(&a.selection, l),
    )
    .await?;
    Ok(Json(json!({"purged": done.len(), "eventIds": event_ids(&done)})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::tests::letter;
    use axum::http::StatusCode;

    #[test]
    fn a_route_naming_an_unknown_domain_is_400_on_the_domain_field() {
        assert_eq!(requested_domain("payment").unwrap(), Domain::Payment);
        let e = requested_domain("paymnt").unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, "validation_failed", Some("domain"))
        );
        assert!(
            e.message.contains("\"paymnt\"") && e.message.contains("payment"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_selection_picks_all_letters_or_the_named_events() {
        let mine = letter(Some("acme"), "e1");
        let theirs = letter(Some("other"), "e2");
        let some = Selection {
            all: false,
            event_ids: Some(vec!["e2".into()]),
        };
        assert!(picks(&some, &theirs) && !picks(&some, &mine));
        let all = Selection {
            all: true,
            event_ids: None,
        };
        assert!(picks(&all, &mine) && picks(&all, &theirs));
    }
}
