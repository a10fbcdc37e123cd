//! When a failed delivery is tried again: which answers are worth a retry, and after how
//! long (exponential backoff with jitter, never sooner than the receiver's `Retry-After`).
//!
//! Retried: 5xx, 408 Request Timeout, 429 Too Many Requests, time-outs and connection
//! errors. Permanent (dead-lettered with the status): every other non-2xx answer,
//! redirects included (they are not followed: a redirect could point anywhere, including
//! addresses the egress policy refuses).

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome<'a> {
    /// The target answered with this status and, maybe, a `Retry-After` header.
    Answered {
        status: u16,
        retry_after: Option<&'a str>,
    },
    /// No answer in time, or the connection failed (refused, reset, DNS, TLS).
    NoAnswer,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: done.
    Delivered,
    /// Try again after this delay.
    RetryAfter(TimeDelta),
    /// Never retry: dead-letter with the status.
    Permanent,
}

/// Backoff tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before the first retry (before jitter).
    pub base_delay: TimeDelta,
    /// The longest computed delay.
    pub max_delay: TimeDelta,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: TimeDelta,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: TimeDelta::seconds(1),
            max_delay: TimeDelta::minutes(5),
            max_retry_after: TimeDelta::hours(1),
        }
    }
}

/// Is this status worth a retry?
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

impl RetryPolicy {
    /// The verdict on attempt number `attempt` (1 for the first) that ended in `outcome` at
    /// `now`. `random` is any uniformly random number; it spreads retries of many deliveries
    /// over time (equal jitter: between half and all of the exponential delay).
    pub fn verdict(
        &self,
        attempt: u32,
        outcome: AttemptOutcome<'_>,
        now: DateTime<Utc>,
        random: u64,
    ) -> Verdict {
        let retry_after = match outcome {
            AttemptOutcome::Answered { status, .. } if (200..300).contains(&status) => {
                return Verdict::Delivered
            }
            AttemptOutcome::Answered {
                status,
                retry_after,
            } if is_retryable_status(status) => retry_after.and_then(|v| parse_retry_after(v, now)),
            AttemptOutcome::Answered { .. } => return Verdict::Permanent,
            AttemptOutcome::NoAnswer => None,
        };
        let backoff = self.backoff(attempt, random);
        let delay = match retry_after {
            Some(asked) => backoff.max(asked.min(self.max_retry_after)),
            None => backoff,
        };
        Verdict::RetryAfter(delay)
    }

    /// `base * 2^(attempt-1)`, capped at `max_delay`, then jittered into its upper half.
    pub fn backoff(&self, attempt: u32, random: u64) -> TimeDelta {
        let base = self.base_delay.num_milliseconds().max(1);
        let cap = self.max_delay.num_milliseconds().max(base);
        let doublings = attempt.saturating_sub(1).min(32);
        let full = base.saturating_mul(1_i64 << doublings).min(cap);
        let half = full / 2;
        // `full - half` keeps odd milliseconds; the modulo is below 2^63.
        let spread = (full - half) as u64 + 1;
        TimeDelta::milliseconds(half + (random % spread) as i64)
    }
}

/// A `Retry-After` value: delay seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00
/// GMT`, also the obsolete RFC 850 and asctime forms). A date in the past is no delay.
/// Anything else is ignored (`None`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<TimeDelta> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Seconds; an absurdly long number saturates instead of failing.
        let seconds = value.parse::<i64>().unwrap_or(i64::MAX / 1000);
        return TimeDelta::try_seconds(seconds.min(i64::MAX / 1000));
    }
    let at = http_date(value)?;
    Some((at - now).max(TimeDelta::zero()))
}

fn http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    // RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn answered(status: u16) -> AttemptOutcome<'static> {
        AttemptOutcome::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn classifies_answers() {
        let policy = RetryPolicy::default();
        for status in [200, 201, 204, 299] {
            assert_eq!(
                policy.verdict(1, answered(status), now(), 0),
                Verdict::Delivered,
                "{status}"
            );
        }
        for status in [500, 502, 503, 504, 599, 408, 429] {
            assert!(
                matches!(
                    policy.verdict(1, answered(status), now(), 0),
                    Verdict::RetryAfter(_)
                ),
                "{status}"
            );
        }
        for status in [301, 302, 400, 401, 403, 404, 410, 413, 422, 100] {
            assert_eq!(
                policy.verdict(1, answered(status), now(), 0),
                Verdict::Permanent,
                "{status}"
            );
        }
        assert!(matches!(
            policy.verdict(1, AttemptOutcome::NoAnswer, now(), 0),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let policy = RetryPolicy::default();
        for attempt in 1..=12u32 {
            let full = (1000_i64 << (attempt - 1)).min(300_000);
            for random in [0, 1, 7, 12_345, u64::MAX / 3, u64::MAX] {
                let d = policy.backoff(attempt, random).num_milliseconds();
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d} outside [{}, {full}]",
                    full / 2
                );
            }
        }
        // Large attempt numbers neither overflow nor exceed the cap.
        assert!(policy.backoff(u32::MAX, u64::MAX) <= policy.max_delay);
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let delays: std::collections::BTreeSet<i64> = (0..50u64)
            .map(|r| policy.backoff(4, r * 7919).num_milliseconds())
            .collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn honours_retry_after_seconds_and_dates() {
        let policy = RetryPolicy::default();
        let v = policy.verdict(
            1,
            AttemptOutcome::Answered {
                status: 429,
                retry_after: Some("120"),
            },
            now(),
            0,
        );
        assert_eq!(v, Verdict::RetryAfter(TimeDelta::seconds(120)));
        let v = policy.verdict(
            1,
            AttemptOutcome::Answered {
                status: 503,
                retry_after: Some("Sun, 01 Mar 2026 10:02:30 GMT"),
            },
            now(),
            0,
        );
        assert_eq!(v, Verdict::RetryAfter(TimeDelta::seconds(150)));
        // The backoff wins when it is longer than what the receiver asked.
        let v = policy.verdict(
            9,
            AttemptOutcome::Answered {
                status: 503,
                retry_after: Some("1"),
            },
            now(),
            0,
        );
        assert_eq!(v, Verdict::RetryAfter(TimeDelta::milliseconds(128_000)));
        // An absurd Retry-After is cut.
        let v = policy.verdict(
            1,
            AttemptOutcome::Answered {
                status: 503,
                retry_after: Some("99999999999999999999"),
            },
            now(),
            0,
        );
        assert_eq!(v, Verdict::RetryAfter(policy.max_retry_after));
        // Retry-After on a permanent status changes nothing.
        let v = policy.verdict(
            1,
            AttemptOutcome::Answered {
                status: 410,
                retry_after: Some("5"),
            },
            now(),
            0,
        );
        assert_eq!(v, Verdict::Permanent);
    }

    #[test]
    fn parses_retry_after_forms() {
        let n = now();
        assert_eq!(parse_retry_after("0", n), Some(TimeDelta::zero()));
        assert_eq!(parse_retry_after(" 30 ", n), Some(TimeDelta::seconds(30)));
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 10:01:00 GMT", n),
            Some(TimeDelta::seconds(60))
        );
        assert_eq!(
            parse_retry_after("Sunday, 01-Mar-26 10:01:00 GMT", n),
            Some(TimeDelta::seconds(60))
        );
        assert_eq!(
            parse_retry_after("Sun Mar  1 10:01:00 2026", n),
            Some(TimeDelta::seconds(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 09:00:00 GMT", n),
            Some(TimeDelta::zero())
        );
        for junk in ["", "-5", "1.5", "soon", "Sun, 99 Mar 2026 10:01:00 GMT"] {
            assert_eq!(parse_retry_after(junk, n), None, "{junk:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics(value in ".{0,40}", attempt in proptest::num::u32::ANY, random in proptest::num::u64::ANY) {
            let _ = parse_retry_after(&value, now());
            let _ = RetryPolicy::default().verdict(attempt, AttemptOutcome::Answered { status: 503, retry_after: Some(&value) }, now(), random);
        }
    }
}
