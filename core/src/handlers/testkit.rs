//! The handler test kit: given these prior events, when this event reaches a handler, then
//! these follow-ons (or this rejection).
//!
//! ```ignore
//! given([loan_created("L1"), loan_funded("L1")])
//!     .when(&PaymentApplication, payment_received("L1", "P1", "8675.74"))
//!     .then([json!({"eventType": "Payment.Applied",
//!         "payload": {"allocation": {"interest": "625.00", "principal": "8050.74"}}})])
//!     .when(&PaymentApplication, payment_received("L1", "P2", "1000000.00"))
//!     .then_rejects("above the payoff amount");
//! ```
//!
//! Events are written as a client would post them (JSON with `eventType`, `aggregateType`,
//! `aggregateId`, `payload`, ...) and stored through the same validation as ingest, written
//! as their catalog producer would. The handler then sees what the batch runner gives it:
//! the event, its own stream's history up to and including it, and the current history of
//! the aggregate its [`DomainHandler::related`] names. Every follow-on is built with
//! [`NewEvent::follow_on`], so it must pass the catalog (type, producer, payload schema), and
//! is stored: a scenario goes on from what the handler appended, like the system does.
//!
//! `then` compares each follow-on, in order, with a JSON pattern: every field the pattern
//! names must be there with that value (objects compare field by field, arrays item by item
//! and must be as long); fields it leaves out are not checked. Their number must match.
//! For checks a pattern cannot say, [`When::then_events`] hands the follow-ons over.

use chrono::Utc;
use serde_json::Value;

use super::{DomainHandler, HandlerInput};
use crate::envelope::{EventEnvelope, FollowOn, NewEvent, WriteContext};
use crate::error::CoreError;

/// The tenant of every scenario.
pub const TENANT: &str = "acme";

/// A scenario's stored events so far, across every stream it touched, in the order stored.
#[derive(Debug, Clone, Default)]
pub struct Given {
    history: Vec<EventEnvelope>,
}

/// Start a scenario with `prior` events already stored.
pub fn given(prior: impl IntoIterator<Item = Value>) -> Given {
    let mut history = Vec::new();
    for raw in prior {
        stored(&mut history, raw);
    }
    Given { history }
}

impl Given {
    /// One more prior event.
    pub fn and(mut self, raw: Value) -> Given {
        stored(&mut self.history, raw);
        self
    }

    /// Store `raw` and hand it to `handler`.
    pub fn when<'h>(mut self, handler: &'h dyn DomainHandler, raw: Value) -> When<'h> {
        stored(&mut self.history, raw);
        let at = self.history.len() - 1;
        When::run(handler, self.history, at)
    }

    /// Hand the last stored `event_type` (typically a follow-on of the step before, as the
    /// queue would deliver it) to `handler`.
    pub fn when_delivered<'h>(self, handler: &'h dyn DomainHandler, event_type: &str) -> When<'h> {
        let at = self
            .history
            .iter()
            .rposition(|e| e.event_type == event_type)
            .unwrap_or_else(|| panic!("no {event_type} stored to deliver"));
        When::run(handler, self.history, at)
    }

    /// Every stored event.
    pub fn history(&self) -> &[EventEnvelope] {
        &self.history
    }

    /// The stored events of one aggregate.
    pub fn stream(&self, aggregate_type: &str, aggregate_id: &str) -> Vec<EventEnvelope> {
        stream(&self.history, aggregate_type, aggregate_id)
    }

    /// The last stored event.
    pub fn last(&self) -> &EventEnvelope {
        self.history.last().expect("a scenario with no events")
    }
}

/// A handler's answer to one event, with the follow-ons already stored.
pub struct When<'h> {
    handler: &'h dyn DomainHandler,
    event: EventEnvelope,
    given: Given,
    outcome: Result<Vec<EventEnvelope>, CoreError>,
}

impl<'h> When<'h> {
    fn run(handler: &'h dyn DomainHandler, mut history: Vec<EventEnvelope>, at: usize) -> Self {
        let event = history[at].clone();
        let own: Vec<EventEnvelope> = history[..=at]
            .iter()
            .filter(|e| e.stream() == event.stream())
            .cloned()
            .collect();
        let mut input = HandlerInput {
            prior: None,
            event: &event,
            history: &own,
            related: &[],
        };
        let related = handler
            .related_in(&input)
            .map(|(t, id)| stream(&history, t, &id))
            .unwrap_or_default();
        input.related = &related;
        let outcome = handler
            .handle(&input)
            .map(|out| store_follow_ons(handler, &event, &out, &mut history));
        When {
            handler,
            event,
            given: Given { history },
            outcome,
        }
    }

    /// The follow-ons match `expected`, one pattern each, in order (see the module doc).
    /// Goes on from the history with them stored.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Value>) -> Given {
        let expected: Vec<Value> = expected.into_iter().collect();
        let (given, out) = self.then_events();
        assert_eq!(
            out.len(),
            expected.len(),
            "expected {} follow-ons, got {}: {:?}",
            expected.len(),
            out.len(),
            out.iter().map(|e| &e.event_type).collect::<Vec<_>>()
        );
        for (i, (event, pattern)) in out.iter().zip(&expected).enumerate() {
            let actual = serde_json::to_value(event).expect("an envelope is JSON");
            if let Err(at) = matches(&actual, pattern, "") {
                panic!(
                    "follow-on {i} ({}): {at}\nexpected {pattern}\n     got {actual}",
                    event.event_type
                );
            }
        }
        given
    }

    /// No follow-ons (and no rejection).
    #[track_caller]
    pub fn then_nothing(self) -> Given {
        self.then([])
    }

    /// The handler refused the event on a business rule whose reason contains `reason`.
    /// Goes on from the history with the refused event stored (as it is in the system).
    #[track_caller]
    pub fn then_rejects(self, reason: &str) -> Given {
        match &self.outcome {
            Err(CoreError::Rejected(why)) if why.contains(reason) => self.given,
            other => panic!(
                "{} on {}: expected a rejection containing {reason:?}, got {other:?}",
                self.handler.name(),
                self.event.event_type
            ),
        }
    }

    /// The stored follow-ons, for checks a pattern cannot express, and the scenario to go
    /// on from.
    #[track_caller]
    pub fn then_events(self) -> (Given, Vec<EventEnvelope>) {
        match self.outcome {
            Ok(out) => (self.given, out),
            Err(e) => panic!(
                "{} on {}: expected follow-ons, got {e:?}",
                self.handler.name(),
                self.event.event_type
            ),
        }
    }
}

/// Hand the last stored `event_type` to `handler` (with the related aggregate it names, as
/// the runner reads it) and store its follow-ons: [`Given::when_delivered`] on a plain
/// history, for property tests that take whatever the handler answers, a rejection too.
pub fn deliver(
    handler: &dyn DomainHandler,
    history: &mut Vec<EventEnvelope>,
    event_type: &str,
) -> Result<Vec<EventEnvelope>, CoreError> {
    let Some(at) = history.iter().rposition(|e| e.event_type == event_type) else {
        return Ok(Vec::new());
    };
    let when = When::run(handler, std::mem::take(history), at);
    *history = when.given.history;
    when.outcome
}

/// `Ok` when `actual` has everything `pattern` names; else where it differs.
fn matches(actual: &Value, pattern: &Value, at: &str) -> Result<(), String> {
    match (pattern, actual) {
        (Value::Object(p), Value::Object(a)) => p.iter().try_for_each(|(k, pv)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match a.get(k) {
                Some(av) => matches(av, pv, &here),
                None => Err(format!("{here} is missing")),
            }
        }),
        (Value::Array(p), Value::Array(a)) if p.len() == a.len() => p
            .iter()
            .zip(a)
            .enumerate()
            .try_for_each(|(i, (pv, av))| matches(av, pv, &format!("{at}[{i}]"))),
        _ if pattern == actual => Ok(()),
        _ => Err(format!("{at}: expected {pattern}, got {actual}")),
    }
}

// The steps the scenarios are made of, also used directly by the fold and property tests.

/// Validate and store `raw` at the end of `history` (as the store would), written by the
/// type's first catalog producer, and return it upcast (as handlers read it).
pub fn stored(history: &mut Vec<EventEnvelope>, raw: Value) -> EventEnvelope {
    // Histories hold handler-owned types too: written as their producer would.
    let producer = crate::catalog::lookup(raw["eventType"].as_str().unwrap_or(""))
        .map_or(crate::catalog::CLIENT, |s| s.producers[0]);
    let ctx = WriteContext {
        tenant_id: TENANT,
        now: Utc::now(),
        principal: "test",
        producer,
    };
    let seq = history
        .iter()
        .rev()
        .find(|e| e.aggregate_type == raw["aggregateType"] && e.aggregate_id == raw["aggregateId"])
        .map_or(1, |e| e.sequence + 1);
    let e = NewEvent::from_json(&raw, &ctx, &mut uuid::Uuid::new_v4)
        .unwrap_or_else(|err| panic!("{err:?}: {raw}"))
        .into_envelope(seq, Utc::now());
    let e = crate::upcast::upcast(e);
    history.push(e.clone());
    e
}

/// Run a handler on the last event of `history`, with `related` as its related history,
/// check every follow-on passes the catalog, and store them in `history`.
pub fn run(
    h: &dyn DomainHandler,
    history: &mut Vec<EventEnvelope>,
    related: &[EventEnvelope],
) -> Result<Vec<EventEnvelope>, CoreError> {
    let event = history.last().expect("an event to run on").clone();
    let own: Vec<EventEnvelope> = history
        .iter()
        .filter(|e| e.stream() == event.stream())
        .cloned()
        .collect();
    let out = h.handle(&HandlerInput {
        prior: None,
        event: &event,
        history: &own,
        related,
    })?;
    Ok(store_follow_ons(h, &event, &out, history))
}

/// Build each follow-on as the runner does (derived id, catalog checks) and store it.
pub fn store_follow_ons(
    h: &dyn DomainHandler,
    source: &EventEnvelope,
    out: &[FollowOn],
    history: &mut Vec<EventEnvelope>,
) -> Vec<EventEnvelope> {
    out.iter()
        .enumerate()
        .map(|(i, f)| {
            let n = NewEvent::follow_on(source, h.name(), i, f.clone(), Utc::now())
                .unwrap_or_else(|e| panic!("{e:?}: {f:?}"));
            let seq = history
                .iter()
                .rev()
                .find(|e| e.stream() == n.stream())
                .map_or(1, |e| e.sequence + 1);
            let e = n.into_envelope(seq, Utc::now());
            history.push(e.clone());
            e
        })
        .collect()
}

/// Events of one aggregate.
pub fn stream(history: &[EventEnvelope], t: &str, id: &str) -> Vec<EventEnvelope> {
    history
        .iter()
        .filter(|e| e.aggregate_type == t && e.aggregate_id == id)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patterns_check_what_they_name() {
        let actual = json!({"eventType": "Payment.Applied",
            "payload": {"allocation": {"interest": "1.00", "principal": "2.00"}, "list": [1, 2]}});
        for ok in [
            json!({}),
            json!({"eventType": "Payment.Applied"}),
            json!({"payload": {"allocation": {"interest": "1.00"}}}),
            json!({"payload": {"list": [1, 2]}}),
        ] {
            assert_eq!(matches(&actual, &ok, ""), Ok(()), "{ok}");
        }
        for (bad, why) in [
            (json!({"eventType": "Payment.Late"}), "eventType: expected"),
            (
                json!({"payload": {"allocation": {"fee": "0"}}}),
                "payload.allocation.fee is missing",
            ),
            (
                json!({"payload": {"list": [1]}}),
                "payload.list: expected [1]",
            ),
            (
                json!({"payload": {"list": [1, 3]}}),
                "payload.list[1]: expected 3",
            ),
        ] {
            let e = matches(&actual, &bad, "").unwrap_err();
            assert!(e.starts_with(why), "{bad}: {e}");
        }
    }
}
