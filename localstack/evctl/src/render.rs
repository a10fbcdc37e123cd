//! Text for people: the correlation trace tree of `GET /correlations/{id}` drawn with box
//! characters. The API answers data; how it looks on a terminal is decided here.

use serde_json::Value;

/// A trace tree as text: one line per event, and per handler either a line each (`compact`
/// false) or one bracketed summary (`compact` true). Used by `evctl trace` and the
/// local runner's demo.
pub fn trace_tree(nodes: &[Value], indent: &str, compact: bool, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let e = &n["event"];
        let id: String = e["eventId"]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(8)
            .collect();
        let agg = e["aggregateId"].as_str().unwrap_or("?");
        // Derived ids are UUIDs: their first 8 characters are enough on screen.
        let agg = match agg.get(..8) {
            Some(head) if agg.len() == 36 => head,
            _ => agg,
        };
        let mut head = format!(
            "{indent}{} {} {}/{} #{} ({id})",
            if last { "└─" } else { "├─" },
            e["eventType"].as_str().unwrap_or("?"),
            e["aggregateType"].as_str().unwrap_or("?"),
            agg,
            e["sequence"],
        );
        let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        let handlers = n["handlers"].as_array().cloned().unwrap_or_default();
        if compact {
            let parts: Vec<String> = handlers
                .iter()
                .map(|h| {
                    let mark = match h["status"].as_str() {
                        Some("COMPLETED") => "✓",
                        Some("FAILED") => "✗",
                        _ => "…",
                    };
                    let d = h["durationMs"]
                        .as_u64()
                        .map(|d| format!(" {d}ms"))
                        .unwrap_or_default();
                    format!("{}{mark}{d}", h["handler"].as_str().unwrap_or("?"))
                })
                .collect();
            if !parts.is_empty() {
                head.push_str(&format!("  [{}]", parts.join(", ")));
            }
            out.push_str(&head);
            out.push('\n');
            for h in handlers
                .iter()
                .filter(|h| h["lastError"].is_string() && h["status"] != "COMPLETED")
            {
                let err: String = h["lastError"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(110)
                    .collect();
                out.push_str(&format!(
                    "{child_indent}  ✗ {}: {err}\n",
                    h["handler"].as_str().unwrap_or("?")
                ));
            }
        } else {
            out.push_str(&head);
            out.push('\n');
            for h in &handlers {
                let mut s = format!(
                    "{child_indent}· {:<20} {:<10}",
                    h["handler"].as_str().unwrap_or("?"),
                    h["status"].as_str().unwrap_or("?")
                );
                if let Some(d) = h["durationMs"].as_u64() {
                    s.push_str(&format!(" {d} ms"));
                }
                let attempts = h["attempts"].as_u64().unwrap_or(0);
                if attempts > 0 {
                    s.push_str(&format!(
                        ", {attempts} attempt{}",
                        if attempts == 1 { "" } else { "s" }
                    ));
                }
                if let Some(err) = h["lastError"].as_str() {
                    let err: String = err.chars().take(100).collect();
                    s.push_str(&format!(", last error: {err}"));
                }
                out.push_str(&s);
                out.push('\n');
            }
        }
        trace_tree(
            n["children"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            &child_indent,
            compact,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> Vec<Value> {
        let handler = |name: &str, status: &str| json!({"handler": name, "status": status, "durationMs": 12, "attempts": 1});
        vec![json!({
            "event": {"eventId": "0123456789ab", "eventType": "Loan.Funded",
                "aggregateType": "Loan", "aggregateId": "L-1", "sequence": 3},
            "handlers": [handler("payments", "COMPLETED")],
            "children": [{
                "event": {"eventId": "abcdef012345", "eventType": "Schedule.Generated",
                    "aggregateType": "Loan", "aggregateId": "L-1", "sequence": 4},
                "handlers": [{"handler": "notify", "status": "FAILED", "attempts": 2,
                    "lastError": "mail server down"}],
                "children": [],
            }],
        })]
    }

    #[test]
    fn a_tree_is_drawn_one_line_per_event_and_handler() {
        let mut full = String::new();
        trace_tree(&tree(), "", false, &mut full);
        let lines: Vec<&str> = full.lines().collect();
        assert_eq!(lines.len(), 4, "{full}");
        assert!(lines[0].starts_with("└─ Loan.Funded Loan/L-1 #3 (01234567)"));
        assert!(lines[1].contains("payments") && lines[1].contains("12 ms, 1 attempt"));
        assert!(lines[2].starts_with("   └─ Schedule.Generated"));
        assert!(lines[3].contains("2 attempts, last error: mail server down"));

        let mut compact = String::new();
        trace_tree(&tree(), "", true, &mut compact);
        assert!(compact.contains("[payments✓ 12ms]"), "{compact}");
        assert!(compact.contains("✗ notify: mail server down"), "{compact}");
    }
}
