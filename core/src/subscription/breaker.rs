//! The circuit breaker of one delivery target, as pure functions over a small state that
//! the adapters store: [`Circuit::decide`] says whether an attempt may go out now, and
//! [`Circuit::apply`] folds in what happened.
//!
//! Closed: attempts go out; `failure_threshold` consecutive failures open the circuit.
//! Open: nothing goes out (deliveries wait in their queue; nothing is dropped) until
//! `cool_down` has passed; then one probe is let through and the circuit is half-open.
//! Half-open: the probe's success closes the circuit, its failure opens it again for another
//! cool-down. A probe that never reports back (a crashed function) is replaced by a new one
//! after a cool-down, so a circuit can never stay half-open for good.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Tuning of every circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed circuit (at least 1).
    pub failure_threshold: u32,
    /// How long an open circuit waits before a probe, and how long a probe may take.
    pub cool_down: TimeDelta,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: TimeDelta::seconds(30),
        }
    }
}

/// The state of one target's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Circuit {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        since: DateTime<Utc>,
        consecutive_failures: u32,
    },
    HalfOpen {
        probe_started: DateTime<Utc>,
        consecutive_failures: u32,
    },
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit::Closed {
            consecutive_failures: 0,
        }
    }
}

/// May an attempt go out now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The circuit is closed: send.
    Send,
    /// Send this attempt as the probe; apply [`BreakerEvent::ProbeStarted`] first so no
    /// other attempt probes at the same time.
    Probe,
    /// Do not send; try again at `until` (the delivery stays in its queue).
    Wait { until: DateTime<Utc> },
}

/// What happened to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerEvent {
    /// A probe was let through at this time.
    ProbeStarted(DateTime<Utc>),
    /// The target answered as a working endpoint (any response that is not a retryable
    /// failure: a 2xx, or a permanent 4xx, which is the subscriber's problem, not the
    /// target's health).
    Succeeded,
    /// A retryable failure (5xx, 408, 429, time-out, connection error) at this time.
    Failed(DateTime<Utc>),
}

/// A change worth an event and a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A closed circuit opened (`Subscription.CircuitOpened`).
    Opened,
    /// An open or half-open circuit closed (`Subscription.CircuitClosed`).
    Closed,
}

impl Circuit {
    pub fn is_closed(&self) -> bool {
        matches!(self, Circuit::Closed { .. })
    }

    pub fn consecutive_failures(&self) -> u32 {
        match *self {
            Circuit::Closed {
                consecutive_failures,
            }
            | Circuit::Open {
                consecutive_failures,
                ..
            }
            | Circuit::HalfOpen {
                consecutive_failures,
                ..
            } => consecutive_failures,
        }
    }

    /// Whether an attempt may go out at `now`.
    pub fn decide(&self, config: &BreakerConfig, now: DateTime<Utc>) -> Decision {
        let waiting_since = match *self {
            Circuit::Closed { .. } => return Decision::Send,
            Circuit::Open { since, .. } => since,
            Circuit::HalfOpen { probe_started, .. } => probe_started,
        };
        // Stored state is read back from the table: never panic on an absurd time.
        let ready_at = waiting_since
            .checked_add_signed(config.cool_down)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now >= ready_at {
            Decision::Probe
        } else {
            Decision::Wait { until: ready_at }
        }
    }

    /// The state after `event`, and the transition it made, if any.
    pub fn apply(
        self,
        config: &BreakerConfig,
        event: BreakerEvent,
    ) -> (Circuit, Option<Transition>) {
        let failures = self.consecutive_failures();
        match (self, event) {
            (_, BreakerEvent::ProbeStarted(at)) => (
                Circuit::HalfOpen {
                    probe_started: at,
                    consecutive_failures: failures,
                },
                None,
            ),
            (Circuit::Closed { .. }, BreakerEvent::Succeeded) => (Circuit::default(), None),
            (_, BreakerEvent::Succeeded) => (Circuit::default(), Some(Transition::Closed)),
            (Circuit::Closed { .. }, BreakerEvent::Failed(at)) => {
                let failures = failures.saturating_add(1);
                if failures >= config.failure_threshold.max(1) {
                    (
                        Circuit::Open {
                            since: at,
                            consecutive_failures: failures,
                        },
                        Some(Transition::Opened),
                    )
                } else {
                    (
                        Circuit::Closed {
                            consecutive_failures: failures,
                        },
                        None,
                    )
                }
            }
            // A failed probe opens the circuit for another cool-down. It was never closed in
            // between, so this is no transition.
            (Circuit::HalfOpen { .. }, BreakerEvent::Failed(at)) => (
                Circuit::Open {
                    since: at,
                    consecutive_failures: failures.saturating_add(1),
                },
                None,
            ),
            // A late failure of an attempt sent before the circuit opened: the cool-down
            // keeps running from when it opened.
            (Circuit::Open { since, .. }, BreakerEvent::Failed(_)) => (
                Circuit::Open {
                    since,
                    consecutive_failures: failures.saturating_add(1),
                },
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap()
    }

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        cool_down: TimeDelta::seconds(30),
    };

    fn run(mut circuit: Circuit, events: &[BreakerEvent]) -> (Circuit, Vec<Transition>) {
        let mut transitions = Vec::new();
        for event in events {
            let (next, transition) = circuit.apply(&CONFIG, *event);
            circuit = next;
            transitions.extend(transition);
        }
        (circuit, transitions)
    }

    #[test]
    fn opens_after_n_consecutive_failures_only() {
        use BreakerEvent::*;
        let (c, tr) = run(Circuit::default(), &[Failed(t(0)), Failed(t(1))]);
        assert_eq!(c.decide(&CONFIG, t(2)), Decision::Send);
        assert!(tr.is_empty());
        // A success in between resets the count.
        let (c, _) = run(c, &[Succeeded, Failed(t(3)), Failed(t(4))]);
        assert!(c.is_closed());
        let (c, tr) = run(c, &[Failed(t(5))]);
        assert_eq!(tr, vec![Transition::Opened]);
        assert_eq!(
            c,
            Circuit::Open {
                since: t(5),
                consecutive_failures: 3
            }
        );
    }

    #[test]
    fn open_waits_for_the_cool_down_then_probes_once() {
        let open = Circuit::Open {
            since: t(0),
            consecutive_failures: 3,
        };
        assert_eq!(open.decide(&CONFIG, t(10)), Decision::Wait { until: t(30) });
        assert_eq!(open.decide(&CONFIG, t(30)), Decision::Probe);
        let (half, tr) = open.apply(&CONFIG, BreakerEvent::ProbeStarted(t(31)));
        assert!(tr.is_none());
        // While the probe is out, everything else waits.
        assert_eq!(half.decide(&CONFIG, t(32)), Decision::Wait { until: t(61) });
        // A probe that never reports back is replaced after a cool-down.
        assert_eq!(half.decide(&CONFIG, t(61)), Decision::Probe);
    }

    #[test]
    fn probe_success_closes_and_failure_reopens() {
        use BreakerEvent::*;
        let open = Circuit::Open {
            since: t(0),
            consecutive_failures: 3,
        };
        let (closed, tr) = run(open, &[ProbeStarted(t(30)), Succeeded]);
        assert_eq!(closed, Circuit::default());
        assert_eq!(tr, vec![Transition::Closed]);
        let (reopened, tr) = run(open, &[ProbeStarted(t(30)), Failed(t(31))]);
        assert_eq!(
            reopened,
            Circuit::Open {
                since: t(31),
                consecutive_failures: 4
            }
        );
        assert!(tr.is_empty());
        assert_eq!(
            reopened.decide(&CONFIG, t(40)),
            Decision::Wait { until: t(61) }
        );
    }

    #[test]
    fn late_results_while_open() {
        use BreakerEvent::*;
        let open = Circuit::Open {
            since: t(0),
            consecutive_failures: 3,
        };
        let (c, tr) = run(open, &[Failed(t(20))]);
        assert_eq!(
            c,
            Circuit::Open {
                since: t(0),
                consecutive_failures: 4
            }
        );
        assert!(tr.is_empty());
        let (c, tr) = run(open, &[Succeeded]);
        assert!(c.is_closed());
        assert_eq!(tr, vec![Transition::Closed]);
    }

    #[test]
    fn an_absurd_stored_time_does_not_panic() {
        let open = Circuit::Open {
            since: DateTime::<Utc>::MAX_UTC,
            consecutive_failures: 1,
        };
        assert!(matches!(open.decide(&CONFIG, t(0)), Decision::Wait { .. }));
    }

    #[test]
    fn a_threshold_of_zero_acts_as_one() {
        let config = BreakerConfig {
            failure_threshold: 0,
            ..CONFIG
        };
        let (c, tr) = Circuit::default().apply(&config, BreakerEvent::Failed(t(0)));
        assert!(!c.is_closed());
        assert_eq!(tr, Some(Transition::Opened));
    }

    #[test]
    fn state_is_stored_as_json() {
        let c = Circuit::HalfOpen {
            probe_started: t(0),
            consecutive_failures: 7,
        };
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["state"], "halfOpen");
        assert_eq!(json["consecutiveFailures"], 7);
        assert_eq!(serde_json::from_value::<Circuit>(json).unwrap(), c);
        let closed = serde_json::to_value(Circuit::default()).unwrap();
        assert_eq!(
            closed,
            serde_json::json!({"state": "closed", "consecutiveFailures": 0})
        );
    }
}
