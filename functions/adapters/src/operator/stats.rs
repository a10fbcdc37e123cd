//! Handler statistics as people read them (`evctl handler stats`): the daily statistics
//! items ([`crate::store::layout`]) the batch runner flushes ([`crate::ledger`]), summed over
//! days, with duration percentiles from the histogram buckets `b0..bN` (upper bounds
//! [`DURATION_BUCKETS_MS`], the last bucket open). The names match the EMF metrics.

use chrono::{Duration as Days, NaiveDate};
use serde::Serialize;

use crate::error::AdapterError;
use crate::ledger::DURATION_BUCKETS_MS;
use crate::store::layout::{
    attr, batch_get_pks, is_switch_pk, num_of, stats_pk, str_of, switch_pk, Read,
};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerStats {
    pub handler: String,
    pub days: Vec<String>,
    pub enabled: bool,
    /// EventsProcessed
    pub successes: u64,
    /// HandlerFailures (permanent)
    pub failures: u64,
    /// HandlerRetries (transient)
    pub retries: u64,
    /// EventsDeadLettered
    pub dead_lettered: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Executions per duration bucket (`b0..bN`).
    pub buckets: Vec<u64>,
    /// Upper bounds (ms) of p50, p90, p99; `None` means above the last bound or no data.
    pub p50_ms: Option<u64>,
    pub p90_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// The bucket upper bound under which a share `q` of executions finished.
pub fn percentile(buckets: &[u64], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (i, b) in buckets.iter().enumerate() {
        acc += b;
        if acc >= want {
            return DURATION_BUCKETS_MS.get(i).copied();
        }
    }
    None
}

/// Stats of `handler` over the `days` days ending with `last` (inclusive).
pub async fn handler_stats(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    handler: &str,
    last: NaiveDate,
    days: u32,
) -> Result<HandlerStats, AdapterError> {
    let day_list: Vec<String> = (0..days.max(1))
        .rev()
        .map(|i| (last - Days::days(i as i64)).format("%Y-%m-%d").to_string())
        .collect();
    let mut pks: Vec<String> = day_list.iter().map(|d| stats_pk(handler, d)).collect();
    pks.push(switch_pk(handler));
    let items = batch_get_pks(ddb, table, &pks, Read::Eventual).await?;
    let mut st = HandlerStats {
        handler: handler.to_string(),
        days: day_list.clone(),
        enabled: true,
        buckets: vec![0; DURATION_BUCKETS_MS.len() + 1],
        ..Default::default()
    };
    let mut last_err_day = String::new();
    for it in &items {
        let pk = str_of(it, attr::PK).unwrap_or("");
        if is_switch_pk(pk) {
            st.enabled = it
                .get(attr::ENABLED)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(true);
            continue;
        }
        st.successes += num_of(it, "successes").unwrap_or(0);
        st.failures += num_of(it, "failures").unwrap_or(0);
        st.retries += num_of(it, "retries").unwrap_or(0);
        st.dead_lettered += num_of(it, "deadLettered").unwrap_or(0);
        for (i, b) in st.buckets.iter_mut().enumerate() {
            *b += num_of(it, &format!("b{i}")).unwrap_or(0);
        }
        let day = str_of(it, "day").unwrap_or("").to_string();
        if let Some(e) = str_of(it, "lastError") {
            if day >= last_err_day {
                last_err_day = day;
                st.last_error = Some(e.to_string());
                st.last_error_at = str_of(it, "lastErrorAt").map(str::to_string);
            }
        }
    }
    st.p50_ms = percentile(&st.buckets, 0.5);
    st.p90_ms = percentile(&st.buckets, 0.9);
    st.p99_ms = percentile(&st.buckets, 0.99);
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_bounds() {
        let mut b = vec![0; DURATION_BUCKETS_MS.len() + 1];
        b[0] = 50; // <= 5 ms
        b[2] = 40; // <= 25 ms
        b[5] = 10; // <= 250 ms
        assert_eq!(percentile(&b, 0.5), Some(5));
        assert_eq!(percentile(&b, 0.9), Some(25));
        assert_eq!(percentile(&b, 0.99), Some(250));
        assert_eq!(percentile(&[0, 0], 0.5), None);
    }
}
