//! The batch runner on the in-memory store, ledger and queue: what the queue, its DLQ, the
//! store and the processing records hold after each batch, with no AWS and no waiting (the
//! queue's clock only moves when a test says so).

use std::time::Duration;

use chrono::{DateTime, Utc};
use lending_events::envelope::FollowOn;
use lending_events::{EventEnvelope, Metadata};
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::ledger::memory::MemoryLedger;
use crate::queue::MemoryQueue;
use crate::store::memory::MemoryStore;

/// A created loan's stream once its funding is handled: the schedule, then the status change
/// (created -> funded).
const FUNDED_AND_SCHEDULED: [&str; 4] = [
    "Loan.Created",
    "Loan.Funded",
    "PaymentSchedule.Generated",
    "Loan.StatusChanged",
];

const TENANT: &str = "acme-bank";
const LEASE: Duration = Duration::from_secs(60);

type TestRunner = BatchRunner<MemoryStore, MemoryLedger, MemoryQueue>;

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(300),
        paused: Duration::from_secs(30),
    }
}

fn payment_handlers() -> Vec<BoxedHandler> {
    lending_events::handlers::for_domain(
        lending_events::Domain::Payment,
        &lending_events::handlers::HandlerConfig::default(),
    )
}

fn projection_handlers() -> Vec<BoxedHandler> {
    lending_events::handlers::for_domain(
        lending_events::Domain::Projection,
        &lending_events::handlers::HandlerConfig::default(),
    )
}

/// A runner of `handlers` over empty in-memory ports.
fn runner_of(handlers: Vec<BoxedHandler>, queue: MemoryQueue) -> TestRunner {
    let store = MemoryStore::new();
    BatchRunner::new(
        store.clone(),
        MemoryLedger::over(&store),
        handlers,
        queue,
        policy(),
    )
}

/// The payment domain's runner over empty in-memory ports.
fn payment_runner(queue: MemoryQueue) -> TestRunner {
    runner_of(payment_handlers(), queue)
}

/// A handler as it would be if its work had effects outside the table: the runner claims
/// its record with a lease before running it.
struct WithOutsideEffects(BoxedHandler);

impl DomainHandler for WithOutsideEffects {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn domain(&self) -> lending_events::Domain {
        self.0.domain()
    }
    fn subscriptions(&self) -> &'static [&'static str] {
        self.0.subscriptions()
    }
    fn priority(&self) -> u32 {
        self.0.priority()
    }
    fn effects(&self) -> Effects {
        Effects::Outside
    }
    fn related(&self, event: &EventEnvelope) -> Option<(&'static str, String)> {
        self.0.related(event)
    }
    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        self.0.handle(input)
    }
}

/// The payment domain's runner with its handlers on the claim-and-lease protocol.
fn claiming_payment_runner(queue: MemoryQueue) -> TestRunner {
    let handlers = payment_handlers()
        .into_iter()
        .map(|h| Box::new(WithOutsideEffects(h)) as BoxedHandler)
        .collect();
    runner_of(handlers, queue)
}

/// A handler that decides there is nothing to do for every `Loan.Funded`.
struct NothingToDo;

impl DomainHandler for NothingToDo {
    fn name(&self) -> &'static str {
        "nothing-to-do"
    }
    fn domain(&self) -> lending_events::Domain {
        lending_events::Domain::Payment
    }
    fn subscriptions(&self) -> &'static [&'static str] {
        &["Loan.Funded"]
    }
    fn handle(&self, _input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        Ok(Vec::new())
    }
}

/// The DynamoDB calls counted by the store and the ledger since the last reset:
/// `(operation, count)`, non-zero only, both ports together.
fn calls(runner: &TestRunner) -> Vec<(&'static str, u64)> {
    let mut all = runner.store().calls.snapshot();
    for (op, n) in runner.ledger().calls.snapshot() {
        match all.iter_mut().find(|(o, _)| *o == op) {
            Some((_, m)) => *m += n,
            None => all.push((op, n)),
        }
    }
    all.sort();
    all
}

fn reset_calls(runner: &TestRunner) {
    runner.store().calls.reset();
    runner.ledger().calls.reset();
}

fn envelope(loan: &str, seq: u64, event_type: &str, payload: Value) -> EventEnvelope {
    let t0: DateTime<Utc> = "2026-01-31T09:00:00Z".parse().expect("a time");
    EventEnvelope {
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{loan}/{seq}").as_bytes()),
        event_type: event_type.into(),
        event_version: 1,
        domain: "loan".into(),
        aggregate_type: "Loan".into(),
        aggregate_id: loan.into(),
        sequence: seq,
        occurred_at: t0,
        recorded_at: t0,
        payload: payload.into(),
        metadata: Metadata {
            user_id: Some("U-1".into()),
            correlation_id: format!("corr-{loan}"),
            causation_id: None,
            source: Some("test".into()),
            tenant_id: TENANT.into(),
            principal: None,
        },
    }
}

fn created(loan: &str) -> EventEnvelope {
    envelope(
        loan,
        1,
        "Loan.Created",
        json!({"loanId": loan, "borrowerId": "B-1", "amount": "12000.00", "interestRate": "6",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}),
    )
}

fn funded(loan: &str, seq: u64) -> EventEnvelope {
    envelope(
        loan,
        seq,
        "Loan.Funded",
        json!({"loanId": loan, "fundedAmount": "12000.00", "fundedAt": "2026-03-01T10:00:00Z"}),
    )
}

fn payment(loan: &str, seq: u64) -> EventEnvelope {
    envelope(
        loan,
        seq,
        "Payment.Received",
        json!({"paymentId": format!("P-{loan}-{seq}"), "loanId": loan, "amount": "10.00",
            "method": "ach", "receivedAt": "2026-04-01T10:00:00Z"}),
    )
}

/// Put an event on the queue as dispatch sends it: its envelope, grouped by aggregate.
fn enqueue(queue: &MemoryQueue, e: &EventEnvelope) -> String {
    queue.push(
        serde_json::to_string(e).expect("an envelope serialises"),
        e.stream().message_group(),
    )
}

/// One round of the event source mapping: receive a batch, run it, delete what succeeded.
async fn deliver(runner: &TestRunner) -> SqsBatchResponse {
    let batch = runner.queue().receive(10);
    let response = runner.handle(batch.clone(), LEASE).await;
    runner.queue().acknowledge(&batch, &response).await;
    response
}

/// The event types stored on a loan's stream, in order.
async fn stream_types(store: &MemoryStore, loan: &str) -> Vec<String> {
    let stream = StreamId {
        tenant_id: TENANT,
        aggregate_type: "Loan",
        aggregate_id: loan,
    };
    store
        .history_until(stream, u64::MAX / 2)
        .await
        .expect("an in-memory read")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

fn work<'a>(handler: &'static str, event: &'a EventEnvelope) -> Work<'a> {
    Work { handler, event }
}

#[tokio::test]
async fn only_the_failing_message_of_a_batch_is_reported_and_stays_on_the_queue() {
    let runner = payment_runner(MemoryQueue::new());
    // L-1's funding is stored; L-2's is not (yet): the runner must not handle an event its
    // stream does not hold, so that message fails transiently.
    runner
        .store()
        .seed([created("L-1"), funded("L-1", 2), created("L-2")]);
    let done = enqueue(runner.queue(), &funded("L-1", 2));
    let failing = enqueue(runner.queue(), &funded("L-2", 2));

    let response = deliver(&runner).await;

    let reported: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(reported, [failing.as_str()]);
    let left: Vec<String> = runner
        .queue()
        .messages()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        left,
        std::slice::from_ref(&failing),
        "{done} was deleted, {failing} kept"
    );
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
    assert_eq!(stream_types(runner.store(), "L-2").await, ["Loan.Created"]);
    assert!(runner.queue().dead_letters().is_empty());
}

#[tokio::test]
async fn after_a_failure_the_later_messages_of_its_group_wait_and_other_groups_go_on() {
    let runner = claiming_payment_runner(MemoryQueue::new());
    let (funding, first_payment) = (funded("L-1", 2), payment("L-1", 3));
    runner.store().seed([
        created("L-1"),
        funding.clone(),
        first_payment.clone(),
        created("L-2"),
        funded("L-2", 2),
    ]);
    // Another execution holds the funding's processing record: it fails (transiently)
    // here, and the payment behind it must not run before it.
    let held = runner
        .ledger()
        .claim(work("payment-schedule", &funding), LEASE, Utc::now())
        .await
        .expect("an in-memory claim");
    assert!(matches!(held, Claim::Acquired { .. }));
    let a = enqueue(runner.queue(), &funding);
    let b = enqueue(runner.queue(), &first_payment);
    let other = enqueue(runner.queue(), &funded("L-2", 2));

    deliver(&runner).await;

    let left = runner.queue().messages();
    assert_eq!(
        left.iter()
            .map(|m| m.message_id.as_str())
            .collect::<Vec<_>>(),
        [a.as_str(), b.as_str()],
        "{other} was handled and deleted"
    );
    // Both wait as long as the failed one.
    assert!(left[0].visibility.is_some());
    assert_eq!(left[0].visibility, left[1].visibility);
    // The payment was never claimed, let alone run; the other loan's funding was.
    assert_eq!(
        runner
            .ledger()
            .status(work("payment-application", &first_payment)),
        None
    );
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        ["Loan.Created", "Loan.Funded", "Payment.Received"]
    );
    assert_eq!(
        stream_types(runner.store(), "L-2").await,
        FUNDED_AND_SCHEDULED
    );
}

#[tokio::test]
async fn a_message_that_keeps_failing_backs_off_per_receive_then_the_redrive_takes_it() {
    let runner = payment_runner(MemoryQueue::new());
    // The funding never shows up in the store: every receive fails transiently.
    runner.store().seed([created("L-1")]);
    let id = enqueue(runner.queue(), &funded("L-1", 2));
    let max = runner.queue().max_receive_count;
    for receive in 1..=max {
        deliver(&runner).await;
        let m = runner.queue().message(&id).expect("still on the queue");
        assert_eq!(m.receives, receive);
        let delay = m.visibility.expect("a backoff was set");
        let ceiling = policy().ceiling(receive);
        assert!(
            delay >= ceiling / 4 && delay <= ceiling,
            "receive {receive}: {delay:?} outside {:?}..{ceiling:?}",
            ceiling / 4
        );
        runner.queue().wait_out_visibility();
    }
    // The next receive is one too many: SQS's redrive moves it, without a reason.
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    let dead = runner.queue().dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].receives, max);
    assert_eq!(dead[0].letter, None);
    assert_eq!(stream_types(runner.store(), "L-1").await, ["Loan.Created"]);
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_at_once_with_their_reason() {
    let runner = payment_runner(MemoryQueue::new());
    // Funding a loan that was never created is a business-rule rejection.
    let ghost = funded("GHOST", 1);
    runner.store().seed([ghost.clone()]);
    let rejected = enqueue(runner.queue(), &ghost);
    let undecodable = runner.queue().push("{not an envelope", "G-1");

    let response = deliver(&runner).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(runner.queue().messages().is_empty(), "both acknowledged");
    let dead = runner.queue().dead_letters();
    assert_eq!(dead.len(), 2);
    let letter = |i: usize| dead[i].letter.clone().expect("sent by the runner");
    let (first, second) = (letter(0), letter(1));
    assert_eq!(
        first.body,
        serde_json::to_string(&ghost).expect("serialises")
    );
    assert_eq!(first.dedup, rejected);
    assert_eq!(first.group, ghost.stream().message_group());
    assert!(
        first.reason.starts_with("payment-schedule: rejected"),
        "{}",
        first.reason
    );
    assert_eq!(second.dedup, undecodable);
    assert_eq!(second.body, "{not an envelope");
    assert!(
        second.reason.starts_with("undecodable"),
        "{}",
        second.reason
    );
    for l in [&first, &second] {
        assert_eq!((l.class, l.receive_count.as_str()), ("permanent", "1"));
    }
    // The rejection is on the processing record; nothing was appended.
    assert_eq!(
        runner.ledger().status(work("payment-schedule", &ghost)),
        Some("FAILED")
    );
    assert_eq!(stream_types(runner.store(), "GHOST").await, ["Loan.Funded"]);
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_sent_leaves_the_message_on_the_queue() {
    let runner = payment_runner(MemoryQueue::without_dlq());
    let id = runner.queue().push("", "G-1");
    let response = deliver(&runner).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let m = runner.queue().message(&id).expect("never lost");
    let ceiling = policy().ceiling(1);
    assert!(m
        .visibility
        .is_some_and(|d| d >= ceiling / 4 && d <= ceiling));
}

#[tokio::test]
async fn a_switched_off_handler_keeps_its_messages_until_switched_on() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    runner.ledger().set_enabled("payment-schedule", false);
    let id = enqueue(runner.queue(), &funding);

    deliver(&runner).await;

    let m = runner.queue().message(&id).expect("waits on the queue");
    assert_eq!(m.visibility, Some(policy().paused));
    assert_eq!(
        runner.ledger().status(work("payment-schedule", &funding)),
        None,
        "not even claimed"
    );
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        ["Loan.Created", "Loan.Funded"]
    );

    runner.ledger().set_enabled("payment-schedule", true);
    runner.queue().wait_out_visibility();
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
}

#[tokio::test]
async fn a_live_lease_holds_the_message_and_an_expired_one_is_taken_over() {
    let runner = claiming_payment_runner(MemoryQueue::new());
    let (live, expired) = (funded("L-1", 2), funded("L-2", 2));
    runner.store().seed([
        created("L-1"),
        live.clone(),
        created("L-2"),
        expired.clone(),
    ]);
    // Another execution claimed L-1's funding a second ago with a minute's lease; one that
    // died claimed L-2's two minutes ago with a second's lease.
    let now = Utc::now();
    for (event, at, lease) in [
        (&live, now - chrono::Duration::seconds(1), LEASE),
        (
            &expired,
            now - chrono::Duration::seconds(120),
            Duration::from_secs(1),
        ),
    ] {
        let claim = runner
            .ledger()
            .claim(work("payment-schedule", event), lease, at)
            .await
            .expect("an in-memory claim");
        assert!(matches!(claim, Claim::Acquired { attempt: 1 }));
    }
    let held = enqueue(runner.queue(), &live);
    enqueue(runner.queue(), &expired);

    deliver(&runner).await;

    let left = runner.queue().messages();
    assert_eq!(
        left.iter()
            .map(|m| m.message_id.as_str())
            .collect::<Vec<_>>(),
        [held.as_str()]
    );
    assert!(left[0].visibility.is_some());
    assert_eq!(
        runner.ledger().status(work("payment-schedule", &live)),
        Some("IN_PROGRESS")
    );
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        ["Loan.Created", "Loan.Funded"]
    );
    assert_eq!(
        runner.ledger().status(work("payment-schedule", &expired)),
        Some("COMPLETED")
    );
    assert_eq!(
        stream_types(runner.store(), "L-2").await,
        FUNDED_AND_SCHEDULED
    );
}

#[tokio::test]
async fn a_message_redelivered_after_its_work_completed_appends_nothing_new() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    // The same event again, as after a crash between completing and acknowledging.
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
}

#[tokio::test]
async fn a_message_received_again_after_it_completed_costs_one_record_read() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    enqueue(runner.queue(), &funding);
    // The first receive runs and completes, but its acknowledgement is lost (the batch
    // outlived its visibility timeout): the message comes back with a receive count of 2.
    let first = runner.queue().receive(10);
    runner.handle(first, LEASE).await;
    runner.queue().wait_out_visibility();
    reset_calls(&runner);
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty(), "acknowledged");
    assert_eq!(
        calls(&runner),
        vec![("GetItem", 1)],
        "the record read alone: no history read, no commit"
    );
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
}

#[tokio::test]
async fn a_handled_message_costs_a_history_read_and_one_transaction() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    enqueue(runner.queue(), &funding);
    reset_calls(&runner);

    deliver(&runner).await;

    assert!(runner.queue().messages().is_empty());
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
    let w = work("payment-schedule", &funding);
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));
    assert_eq!(runner.ledger().executions(w), Some((1, 1)));
    // The stream read above is one more Query; the batch's statistics one UpdateItem.
    assert_eq!(
        calls(&runner),
        [("Query", 2), ("TransactWriteItems", 1), ("UpdateItem", 1)]
    );
}

/// The follow-ons the payment-schedule handler decides for `funding` (after `created`).
fn schedule_of(runner: &TestRunner, funding: &EventEnvelope, now: DateTime<Utc>) -> Vec<NewEvent> {
    let history = [created("L-1"), funding.clone()];
    let input = HandlerInput {
        prior: None,
        event: funding,
        history: &history,
        related: &[],
    };
    let handler = &runner.handlers()[0];
    assert_eq!(handler.name(), "payment-schedule");
    handler
        .handle(&input)
        .expect("a schedule")
        .into_iter()
        .enumerate()
        .map(|(i, f)| NewEvent::follow_on(funding, handler.name(), i, f, now))
        .collect::<Result<Vec<_>, _>>()
        .expect("valid follow-ons")
}

#[tokio::test]
async fn a_commit_that_finds_the_follow_ons_stored_writes_nothing_and_acknowledges() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    let w = work("payment-schedule", &funding);
    // Two runs of the same message decided the same follow-on; the first commit wins.
    let schedule = |now| schedule_of(&runner, &funding, now);
    let unclaimed = Attempt::Unclaimed { receive: 1 };
    let commit = |follow_ons| {
        runner.ledger().commit(
            w,
            Commit {
                follow_ons,
                known: KnownHeads::new(),
                attempt: unclaimed,
                rerun: false,
                duration: Duration::from_millis(3),
                now: Utc::now(),
            },
        )
    };
    let (first, second) = (schedule(Utc::now()), schedule(Utc::now()));
    // The schedule and the status change, after the two seeded events.
    let follow_ons = FUNDED_AND_SCHEDULED.len() - 2;
    assert!(matches!(commit(first).await, Ok(Committed::Now(e)) if e.len() == follow_ons));
    assert!(matches!(commit(second).await, Ok(Committed::AlreadyDone)));
    assert_eq!(runner.ledger().executions(w), Some((1, 1)), "recorded once");
    assert_eq!(runner.store().len(), FUNDED_AND_SCHEDULED.len());

    // A run that lost, and then failed (say, a throttled read), leaves the completion as it is.
    runner
        .ledger()
        .fail(
            w,
            unclaimed,
            FailureClass::Transient,
            "throttled",
            Duration::ZERO,
            Utc::now(),
        )
        .await
        .expect("an in-memory write");
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));

    // The message itself, delivered again: acknowledged, nothing new.
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    assert!(runner.queue().dead_letters().is_empty());
    assert_eq!(runner.store().len(), FUNDED_AND_SCHEDULED.len());
    assert_eq!(runner.ledger().executions(w), Some((1, 1)));
}

#[tokio::test]
async fn follow_ons_stored_by_a_run_that_never_completed_are_completed_over() {
    // An earlier run appended the follow-ons with plain appends and stopped before its
    // record was completed (a crash, or a runner of the claiming protocol).
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    let w = work("payment-schedule", &funding);
    runner
        .store()
        .append(schedule_of(&runner, &funding, Utc::now()), Utc::now())
        .await
        .expect("an in-memory append");
    assert_eq!(runner.ledger().status(w), None);

    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty(), "acknowledged");
    assert!(runner.queue().dead_letters().is_empty());
    assert_eq!(
        runner.store().len(),
        FUNDED_AND_SCHEDULED.len(),
        "nothing twice"
    );
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));
}

#[tokio::test]
async fn nothing_to_do_writes_the_completed_record_alone_and_once() {
    let runner = runner_of(vec![Box::new(NothingToDo)], MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    reset_calls(&runner);
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    let w = work("nothing-to-do", &funding);
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));
    assert_eq!(runner.ledger().executions(w), Some((1, 1)));
    // History, the completion, the batch's statistics.
    assert_eq!(calls(&runner), [("Query", 1), ("UpdateItem", 2)]);
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    assert_eq!(
        runner.ledger().executions(w),
        Some((1, 1)),
        "not logged twice"
    );
    assert_eq!(runner.store().len(), 2);
}

#[tokio::test]
async fn a_rerun_runs_a_completed_message_again_and_logs_it_without_new_events() {
    let runner = payment_runner(MemoryQueue::new());
    let funding = funded("L-1", 2);
    runner.store().seed([created("L-1"), funding.clone()]);
    enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    let w = work("payment-schedule", &funding);
    assert_eq!(runner.ledger().executions(w), Some((1, 1)));
    runner.queue().push_with(
        serde_json::to_string(&funding).expect("serialises"),
        funding.stream().message_group(),
        [("replay", "R-1"), ("rerun", "true")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    );
    deliver(&runner).await;
    assert!(runner.queue().messages().is_empty());
    // Logged as a second execution; the first run's follow-on stands, once.
    assert_eq!(runner.ledger().executions(w), Some((2, 2)));
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        FUNDED_AND_SCHEDULED
    );
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));
}

#[tokio::test]
async fn a_failure_without_a_claim_records_its_class_and_counts_each_execution() {
    let runner = payment_runner(MemoryQueue::new());
    // The funding is not in the store yet: every execution fails transiently.
    runner.store().seed([created("L-1")]);
    let funding = funded("L-1", 2);
    let id = enqueue(runner.queue(), &funding);
    deliver(&runner).await;
    let w = work("payment-schedule", &funding);
    assert_eq!(runner.ledger().status(w), Some("FAILED"));
    // Each quick retry in the invocation is an execution of its own.
    let (attempts, log) = runner.ledger().executions(w).expect("a record");
    assert_eq!(
        (attempts as usize, log),
        (QUICK_ATTEMPTS as usize, QUICK_ATTEMPTS as usize)
    );
    // Once the event is there, the next receive completes the record.
    runner.store().seed([funding.clone()]);
    runner.queue().wait_out_visibility();
    deliver(&runner).await;
    assert!(runner.queue().message(&id).is_none());
    assert_eq!(runner.ledger().status(w), Some("COMPLETED"));
    assert_eq!(
        runner.ledger().executions(w),
        Some((QUICK_ATTEMPTS + 1, QUICK_ATTEMPTS as usize + 1))
    );
}

/// The projection domain's runner: the loan-summary handler writes summaries, no events.
#[tokio::test]
async fn the_projection_writes_each_loans_summary_and_never_moves_it_backwards() {
    let runner: TestRunner = BatchRunner::new(
        MemoryStore::new(),
        MemoryLedger::new(),
        lending_events::handlers::for_domain(
            lending_events::Domain::Projection,
            &lending_events::handlers::HandlerConfig::default(),
        ),
        MemoryQueue::new(),
        policy(),
    );
    let events = [created("L-1"), funded("L-1", 2)];
    runner.store().seed(events.clone());
    // Delivered newest first (a replay of the older one comes after): the newer summary
    // stands, and the projection appended nothing to the stream.
    enqueue(runner.queue(), &events[1]);
    enqueue(runner.queue(), &events[0]);
    let response = deliver(&runner).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(runner.queue().messages().is_empty());
    let summaries = runner.store().loan_summaries();
    assert_eq!(summaries.len(), 1);
    let s = &summaries[0];
    assert_eq!((s.tenant_id.as_str(), s.loan_id.as_str()), (TENANT, "L-1"));
    assert_eq!(s.version, 2);
    assert_eq!(s.status.as_str(), "funded");
    assert_eq!(s.outstanding_principal.to_string(), "12000.00");
    assert_eq!(
        stream_types(runner.store(), "L-1").await,
        ["Loan.Created", "Loan.Funded"]
    );
}

/// The statistics UpdateItems the ledger received (one per handler per flush).
fn stats_flushes(runner: &TestRunner) -> u64 {
    count_of(runner.ledger().calls.snapshot(), "UpdateItem")
}

/// How many calls of `op` a call count holds.
fn count_of(calls: Vec<(&'static str, u64)>, op: &str) -> u64 {
    calls
        .into_iter()
        .find(|(name, _)| *name == op)
        .map_or(0, |(_, n)| n)
}

#[tokio::test]
async fn a_busy_runner_flushes_statistics_once_per_interval_failures_at_once_and_the_rest_when_told(
) {
    let runner = payment_runner(MemoryQueue::new());
    for loan in ["L-1", "L-2", "L-3"] {
        let funding = funded(loan, 2);
        runner.store().seed([created(loan), funding.clone()]);
        enqueue(runner.queue(), &funding);
        reset_calls(&runner);
        // One message per batch, as a quiet queue delivers them.
        deliver(&runner).await;
        // Commits of the follow-on-only protocol write no UpdateItem: what is counted
        // here is statistics.
        let flushed = stats_flushes(&runner);
        if loan == "L-1" {
            assert_eq!(flushed, 1, "the first batch of a runner flushes");
        } else {
            assert_eq!(flushed, 0, "{loan}: within the interval, gathered");
        }
    }
    // Idle within the interval: still gathered.
    reset_calls(&runner);
    runner.flush_stats_when_due().await;
    assert_eq!(stats_flushes(&runner), 0, "idle within the interval");
    // Told (shutting down): what was gathered goes, once.
    runner.flush_stats().await;
    assert_eq!(stats_flushes(&runner), 1);
    runner.flush_stats().await;
    assert_eq!(
        stats_flushes(&runner),
        1,
        "nothing gathered, nothing written"
    );

    // A failure is flushed with its batch, inside the interval.
    // (The message's event is not in the store: a transient failure.)
    enqueue(runner.queue(), &payment("L-9", 5));
    let response = deliver(&runner).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    reset_calls(&runner);
    runner.flush_stats().await;
    assert_eq!(
        stats_flushes(&runner),
        0,
        "the failed batch's statistics were written with it"
    );
}

#[tokio::test]
async fn the_next_message_of_a_stream_is_folded_from_the_state_kept_not_read_again() {
    let events: Vec<EventEnvelope> = [created("L-1"), funded("L-1", 2)]
        .into_iter()
        .chain((3..=10).map(|seq| payment("L-1", seq)))
        .collect();
    let kept = runner_of(projection_handlers(), MemoryQueue::new());
    kept.store().seed(events.clone());
    reset_calls(&kept);
    // Messages 1-8 in order, then 10 (9 went to another instance).
    for e in events.iter().take(8).chain(events.last()) {
        enqueue(kept.queue(), e);
        deliver(&kept).await;
        // What it writes is what a runner that reads the history writes.
        let reading = runner_of(projection_handlers(), MemoryQueue::new());
        reading.store().seed(events.clone());
        enqueue(reading.queue(), e);
        deliver(&reading).await;
        assert_eq!(
            kept.store().loan_summaries(),
            reading.store().loan_summaries(),
            "the summary at {}",
            e.sequence
        );
    }
    assert!(kept.queue().messages().is_empty());
    let queries = count_of(calls(&kept), "Query");
    assert_eq!(
        queries, 2,
        "the first message and the one after the gap read"
    );
}

#[tokio::test]
async fn a_batch_writes_one_summary_per_stream_the_fold_of_its_last_event() {
    let stream = |loan: &str, last: u64| -> Vec<EventEnvelope> {
        [created(loan), funded(loan, 2)]
            .into_iter()
            .chain((3..=last).map(|seq| payment(loan, seq)))
            .collect()
    };
    let (one, two) = (stream("L-1", 5), stream("L-2", 3));
    let seeded = || one.iter().chain(&two).cloned().collect::<Vec<_>>();
    // One batch, the two loans interleaved; L-2's 3 comes as a replay, so its 2 stands alone.
    let batched = runner_of(projection_handlers(), MemoryQueue::new());
    batched.store().seed(seeded());
    for e in [
        &one[0], &two[0], &one[1], &one[2], &two[1], &one[3], &one[4],
    ] {
        enqueue(batched.queue(), e);
    }
    batched.queue().push_with(
        serde_json::to_string(&two[2]).expect("an envelope serialises"),
        two[2].stream().message_group(),
        HashMap::from([("replay".to_string(), "R-1".to_string())]),
    );
    batched.store().calls.reset();
    deliver(&batched).await;
    assert!(batched.queue().messages().is_empty());
    let summary_writes = count_of(batched.store().calls.snapshot(), "UpdateItem");
    assert_eq!(
        summary_writes, 3,
        "L-1 at 5, L-2 at 2 (its 3 is a replay) and at 3"
    );
    // Every message's record is completed, and the summaries are those of a runner that
    // writes one for every message.
    for e in one.iter().chain(&two) {
        assert_eq!(
            batched.ledger().status(work("loan-summary", e)),
            Some("COMPLETED"),
            "{} {}",
            e.aggregate_id,
            e.sequence
        );
    }
    let each = runner_of(projection_handlers(), MemoryQueue::new());
    each.store().seed(seeded());
    for e in one.iter().chain(&two) {
        enqueue(each.queue(), e);
        deliver(&each).await;
    }
    let sorted = |mut s: Vec<lending_events::projections::LoanSummary>| {
        s.sort_by(|a, b| a.loan_id.cmp(&b.loan_id));
        s
    };
    assert_eq!(
        sorted(batched.store().loan_summaries()),
        sorted(each.store().loan_summaries())
    );
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    /// Finding superseded summaries reads queue message bodies: any body (arbitrary text, or
    /// an envelope with a field bent) is read or left out, never a panic.
    #[test]
    fn superseded_summaries_of_arbitrary_bodies_never_panic(
        bodies in proptest::collection::vec(
            proptest::prop_oneof![
                ".*",
                (0u64..u64::MAX, ".{0,12}").prop_map(|(seq, id)| {
                    let mut e = serde_json::to_value(payment("L-1", 3)).expect("an envelope");
                    e["sequence"] = json!(seq);
                    e["aggregateId"] = json!(id);
                    e.to_string()
                }),
            ],
            0..12,
        )
    ) {
        let records: Vec<SqsMessage> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m-{i}"));
                m.body = Some(body);
                m
            })
            .collect();
        let superseded = summaries_superseded(&records);
        proptest::prop_assert!(superseded.len() <= records.len());
    }
}
