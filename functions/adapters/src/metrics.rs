//! Metrics as CloudWatch Embedded Metric Format: one JSON log line per batch and function,
//! turned into metrics by CloudWatch Logs without an API call on the hot path. Namespace
//! `LendingOS/Events`; the names are the ones the SAM dashboard and `evctl stats` use:
//! EventsIngested, EventsDispatched, EventsProcessed, HandlerFailures, HandlerRetries,
//! EventsDeadLettered, HandlerDuration (ms), HandlerLag (ms, recordedAt to handled).

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "LendingOS/Events";

/// One EMF document: counts and value lists under the given dimensions.
pub struct Emf {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, &'static str, Value)>,
}

impl Emf {
    pub fn new(dimensions: &[(&'static str, &str)]) -> Self {
        Emf {
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
            metrics: Vec::new(),
        }
    }

    pub fn count(mut self, name: &'static str, n: u64) -> Self {
        self.metrics.push((name, "Count", json!(n)));
        self
    }

    pub fn millis(mut self, name: &'static str, values: &[f64]) -> Self {
        if !values.is_empty() {
            self.metrics.push((name, "Milliseconds", json!(values)));
        }
        self
    }

    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut doc = Map::new();
        let dims: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        let defs: Vec<Value> = self
            .metrics
            .iter()
            .map(|(n, u, _)| json!({"Name": n, "Unit": u}))
            .collect();
        doc.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dims], "Metrics": defs}]}),
        );
        for (k, v) in &self.dimensions {
            doc.insert((*k).into(), json!(v));
        }
        for (n, _, v) in &self.metrics {
            doc.insert((*n).into(), v.clone());
        }
        Value::Object(doc)
    }

    /// Write the line: to stdout on Lambda (CloudWatch reads it), to stderr elsewhere so a
    /// terminal's own output stays clean.
    pub fn emit(self) {
        if self.metrics.is_empty() {
            return;
        }
        let line = self
            .to_json(chrono::Utc::now().timestamp_millis())
            .to_string();
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_emf_shape() {
        let doc = Emf::new(&[("Handler", "payment-schedule")])
            .count("EventsProcessed", 3)
            .millis("HandlerDuration", &[1.5, 2.0])
            .to_json(42);
        let m = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], json!("LendingOS/Events"));
        assert_eq!(m["Dimensions"], json!([["Handler"]]));
        assert_eq!(
            m["Metrics"][1],
            json!({"Name": "HandlerDuration", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["EventsProcessed"], json!(3));
        assert_eq!(doc["HandlerDuration"], json!([1.5, 2.0]));
        assert_eq!(doc["Handler"], json!("payment-schedule"));
    }
}
