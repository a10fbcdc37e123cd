//! The catalog for readers outside the code: JSON (with a JSON Schema per payload version,
//! served by `GET /catalog`) and a Markdown table (for the README).

use serde_json::{json, Value};

use super::{Catalog, ALIASES, CATALOG};
use crate::schema::{fields_summary, json_schema};

impl Catalog {
    /// The catalog as JSON: one entry per type with a JSON Schema per payload version.
    pub fn export(&self) -> Value {
        let types: Vec<Value> = self
            .specs()
            .map(|s| {
                let versions: Vec<Value> = (1..=s.latest_version())
                    .filter_map(|v| s.schema(v).map(|f| (v, f)))
                    .map(|(v, f)| json!({"version": v, "payloadSchema": json_schema(f)}))
                    .collect();
                json!({
                    "eventType": s.event_type,
                    "domain": s.domain,
                    "aggregateType": s.aggregate_type,
                    "aggregateIdField": s.aggregate_id_field,
                    "description": s.description,
                    "latestVersion": s.latest_version(),
                    "payloadSchema": json_schema(s.fields),
                    "versions": versions,
                    "custom": !CATALOG.iter().any(|b| b.event_type == s.event_type),
                    "producers": s.producers,
                })
            })
            .collect();
        json!({ "eventTypes": types, "aliases": ALIASES })
    }

    /// The catalog as a Markdown table (for the README): type, domain, aggregate, versions,
    /// producers and the latest payload's fields (`?` marks optional ones).
    pub fn markdown_table(&self) -> String {
        let mut out = String::from(
            "| event type | domain | aggregate (id) | v | producers | payload (latest version; `?` optional) | description |\n|---|---|---|---|---|---|---|\n",
        );
        for s in self.specs() {
            let latest = s.schema(s.latest_version()).unwrap_or(s.fields);
            out.push_str(&format!(
                "| `{}` | {} | {} ({}) | {} | {} | {} | {} |\n",
                s.event_type,
                s.domain,
                s.aggregate_type,
                s.aggregate_id_field,
                s.latest_version(),
                s.producers.join(", "),
                fields_summary(latest),
                s.description
            ));
        }
        out.push_str("\nAliases (accepted, stored under the canonical name): ");
        let aliases: Vec<String> = ALIASES
            .iter()
            .map(|(a, c)| format!("`{a}` → `{c}`"))
            .collect();
        out.push_str(&aliases.join(", "));
        out.push('\n');
        out
    }
}

/// The built-in catalog as JSON (see [`Catalog::export`]).
pub fn export() -> Value {
    Catalog::builtin().export()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_and_table_list_every_type() {
        let e = export();
        assert_eq!(e["eventTypes"].as_array().unwrap().len(), CATALOG.len());
        let received = e["eventTypes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["eventType"] == "Payment.Received")
            .unwrap();
        assert_eq!(received["versions"].as_array().unwrap().len(), 2);
        let table = Catalog::builtin().markdown_table();
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| `")).count(),
            CATALOG.len()
        );
        assert!(table.contains("paymentMethod: ach\\|wire"));
    }
}
