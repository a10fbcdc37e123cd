//! The local runner's settings from the environment (`LOCAL_*`); a setting that is unset or
//! does not parse takes its default.

use std::time::Duration;

/// Pollers per domain queue (`LOCAL_QUEUE_CONCURRENCY`, default 2): like Lambda's
/// concurrent invocations per queue. FIFO never hands one message group to two receivers
/// at once, so order per aggregate holds.
pub fn queue_concurrency() -> usize {
    env_number("LOCAL_QUEUE_CONCURRENCY", 2).max(1) as usize
}

/// A numeric setting of the local runner from the environment; unset or unparsable gives
/// the default.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a Lambda timeout gives a batch: the processing lease and, as the receive's
/// visibility timeout, how long a crashed batch stays invisible (`LOCAL_BATCH_TIMEOUT_SECS`,
/// default 30).
pub fn batch_timeout() -> Duration {
    Duration::from_secs(env_number("LOCAL_BATCH_TIMEOUT_SECS", 30))
}

/// The stream mapping's batching window (`DispatchBatchingWindowSeconds` in the template,
/// default 1 s): a shard's records are gathered until the window since the first of them
/// ends or a batch of [`STREAM_BATCH`] is full, so a stream batch carries several events per
/// queue. `LOCAL_STREAM_BATCH_WINDOW_MS` (default 1000; 0 = every read is a batch).
pub fn batch_window() -> Duration {
    Duration::from_millis(env_number("LOCAL_STREAM_BATCH_WINDOW_MS", 1000))
}
