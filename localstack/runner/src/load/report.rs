//! The load run's report: what was measured, as the `LOAD` and `CALLS` documents and as
//! text.

use super::*;

/// Everything a load run observed, from which the report is computed.
pub(super) struct Measured<'a> {
    pub(super) opts: &'a Options,
    pub(super) started: DateTime<Utc>,
    pub(super) publish_secs: f64,
    pub(super) requests: usize,
    pub(super) published: &'a [Published],
    /// Every (processing record pk, index into `published`) the run waited for.
    pub(super) keys: Vec<(String, usize)>,
    pub(super) wait: Waited,
    /// AWS calls per part, at completion.
    pub(super) counts: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// DynamoDB capacity units per part and operation, as the emulator reported them.
    pub(super) capacity: BTreeMap<&'static str, BTreeMap<String, Capacity>>,
    /// Handled messages of the read model (the rest are the domain handlers').
    pub(super) projection_handled: usize,
    pub(super) receives: Receives,
    pub(super) follow_ons: FollowOns,
    pub(super) dead_lettered: u64,
    pub(super) queued: u64,
}

impl Measured<'_> {
    /// Latency per event with subscribers: its last handler's completion minus the client's
    /// clock just before the POST, in ms, sorted.
    fn latencies_ms(&self) -> Vec<f64> {
        let mut last: HashMap<usize, DateTime<Utc>> = HashMap::new();
        for (pk, i) in &self.keys {
            if let Some(done) = self.wait.completed.get(pk) {
                let e = last.entry(*i).or_insert(*done);
                *e = (*e).max(*done);
            }
        }
        let mut latencies: Vec<f64> = last
            .iter()
            .map(|(i, done)| {
                (*done - self.published[*i].at)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1e3
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    }

    /// Seconds from the first POST to the last completion.
    fn wall_secs(&self) -> f64 {
        let end = self
            .wait
            .completed
            .values()
            .max()
            .copied()
            .unwrap_or_else(Utc::now);
        ((end - self.started).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6)
    }

    fn calls(&self, label: &str, op: &str) -> u64 {
        self.counts[label].get(op).copied().unwrap_or(0)
    }

    /// Handler executions completed (domain handlers and read model).
    fn handled(&self) -> usize {
        self.wait.completed.len() + self.follow_ons.completed
    }

    /// Messages dispatch delivered: one per (event, routed domain).
    fn delivered(&self) -> usize {
        self.published
            .iter()
            .map(|p| p.domain_routes)
            .sum::<usize>()
            + self.follow_ons.routes
    }

    pub(super) fn report(&self) -> LoadReport {
        let n = self.published.len();
        let expected = self.keys.len();
        let mut work_mix = BTreeMap::new();
        for label in [INGEST, DISPATCH, HANDLERS, PROJECTION, STREAM] {
            for (op, c) in &self.counts[label] {
                // Idle long polls mostly wait: the ceiling replays the receives that returned
                // messages (every poller's, counted once), each with its delete.
                let c = match op.as_str() {
                    "SQS.ReceiveMessage" if label == HANDLERS => self.receives.with_messages,
                    "SQS.ReceiveMessage" | "SQS.DeleteMessageBatch"
                        if label == HANDLERS || label == PROJECTION =>
                    {
                        continue
                    }
                    _ => *c,
                };
                work_mix.insert(format!("{label}/{op}"), c as f64 / n as f64);
            }
        }
        let sends = self.calls(DISPATCH, "SQS.SendMessageBatch");
        LoadReport {
            expected,
            lost: expected - self.wait.completed.len(),
            dead_lettered: self.dead_lettered,
            events_per_sec: n as f64 / self.wall_secs(),
            work_mix,
            entries_per_send: if sends == 0 {
                1
            } else {
                ((self.delivered() as f64 / sends as f64).round() as usize).clamp(1, 10)
            },
        }
    }

    /// The `LOAD` document: throughput, latency and what was left over.
    fn load_json(&self, report: &LoadReport) -> Value {
        let (opts, n) = (self.opts, self.published.len());
        let completed = self.wait.completed.len();
        let wall = self.wall_secs();
        let latencies = self.latencies_ms();
        let pct = |q: f64| percentile(&latencies, q);
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        json!({
            "prefix": opts.prefix,
            "events": n,
            "aggregates": opts.aggregates,
            "batch": opts.batch,
            "concurrency": opts.concurrency,
            "queuePollers": settings::queue_concurrency(),
            "requests": self.requests,
            "publishSecs": round3(self.publish_secs),
            "publishedPerSec": round3(n as f64 / self.publish_secs.max(1e-6)),
            "handlerExecutions": {"expected": report.expected, "completed": completed, "failedRecords": self.wait.failed},
            "lost": report.lost,
            "deadLettered": self.dead_lettered,
            "stillQueued": self.queued,
            "followOns": {
                "events": self.follow_ons.events.len(),
                "handlerExecutionsExpected": self.follow_ons.expected,
                "handlerExecutionsCompleted": self.follow_ons.completed,
            },
            "wallSecs": round3(wall),
            "eventsPerSec": round3(report.events_per_sec),
            "executionsPerSec": round3(completed as f64 / wall),
            "latencyMs": {"n": latencies.len(), "p50": round3(pct(0.50)), "p95": round3(pct(0.95)),
                "p99": round3(pct(0.99)), "max": round3(latencies.last().copied().unwrap_or(0.0))},
            "loadavg": loadavg,
            "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// The `CALLS` document: the AWS calls of each part.
    fn calls_json(&self) -> Value {
        json!({
            "batch": self.opts.batch,
            "events": self.published.len(),
            "requests": self.requests,
            "storedEvents": self.follow_ons.stored,
            "messages": self.delivered(),
            "receivesWithMessages": self.receives.with_messages,
            "messagesReceived": self.receives.messages,
            "handled": self.handled(),
            "handledByDomainHandlers": self.handled() - self.projection_handled.min(self.handled()),
            "handledByReadModel": self.projection_handled,
            "ingestWritesPerRequest": round3(
                (self.calls(INGEST, "DynamoDB.TransactWriteItems")
                    + self.calls(INGEST, "DynamoDB.PutItem")) as f64
                    / self.requests.max(1) as f64
            ),
            "counts": self.counts,
            "capacity": self.capacity_json(),
        })
    }

    /// Read and write units per part: in total, and per unit of its work (ingest per
    /// published event, handlers per handled message). The handlers' switch reads (`GetItem`
    /// by idle pollers, growing with the run's length) are left out of their work.
    fn capacity_json(&self) -> Value {
        let projection = self.projection_handled.min(self.handled());
        let domain = (self.handled() - projection).max(1) as f64;
        let per = |label: &str, unit: f64| {
            let (mut read, mut write) = (0.0, 0.0);
            for (op, c) in self.capacity.get(label).into_iter().flatten() {
                if (label == HANDLERS || label == PROJECTION) && op == "DynamoDB.GetItem" {
                    continue;
                }
                read += c.read_units;
                write += c.write_units;
            }
            json!({"readUnits": round3(read), "writeUnits": round3(write),
                "readPerUnit": round3(read / unit), "writePerUnit": round3(write / unit)})
        };
        json!({
            "ingestPerEvent": per(INGEST, self.published.len().max(1) as f64),
            "dispatchPerStoredEvent": per(DISPATCH, self.follow_ons.stored.max(1) as f64),
            "handlersPerHandled": per(HANDLERS, domain),
            "readModelPerHandled": per(PROJECTION, projection.max(1) as f64),
            "byOperation": self.capacity.iter().map(|(label, ops)| {
                let ops: serde_json::Map<String, Value> = ops
                    .iter()
                    .map(|(op, c)| (op.clone(), json!({"read": round3(c.read_units), "write": round3(c.write_units)})))
                    .collect();
                (label.to_string(), Value::Object(ops))
            }).collect::<serde_json::Map<String, Value>>(),
        })
    }

    /// The readable report (and with `--json` the `LOAD` and `CALLS` lines), and what did
    /// not complete in time.
    pub(super) fn print(&self, report: &LoadReport) {
        let (load, calls) = (self.load_json(report), self.calls_json());
        let text = format!("{}{}", load_text(&load), calls_text(&calls));
        if self.opts.json {
            println!("LOAD {load}");
            println!("CALLS {calls}");
            // The readable report too, out of the way of the machine-readable lines.
            eprint!("{text}");
        } else {
            print!("{text}");
        }
        if let Some(p) = &self.wait.pending_detail {
            let mut types: BTreeMap<&str, usize> = BTreeMap::new();
            for (pk, i) in &self.keys {
                if !self.wait.completed.contains_key(pk) {
                    *types
                        .entry(self.published[*i].event_type.as_str())
                        .or_default() += 1;
                }
            }
            eprintln!(
                "load: not completed within {:?}: {p}; by event type {types:?}; {} messages still on the domain queues",
                self.opts.timeout, self.queued
            );
        }
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn load_text(l: &Value) -> String {
    let mut out = String::new();
    out += &format!(
        "load: {} events over {} loans, {} per request, {} clients ({} requests in {:.2} s: {:.1} events/s accepted)\n",
        l["events"], l["aggregates"], l["batch"], l["concurrency"], l["requests"],
        l["publishSecs"].as_f64().unwrap_or(0.0), l["publishedPerSec"].as_f64().unwrap_or(0.0)
    );
    let h = &l["handlerExecutions"];
    out += &format!(
        "handler executions: {} of {} completed ({} records seen FAILED), lost {}, dead-lettered {}; follow-on events {} ({} handler executions)\n",
        h["completed"], h["expected"], h["failedRecords"], l["lost"], l["deadLettered"],
        l["followOns"]["events"], l["followOns"]["handlerExecutionsExpected"]
    );
    let lat = &l["latencyMs"];
    out += &format!(
        "wall {:.2} s: {:.1} events/s, {:.1} handler executions/s; publish-to-handled latency ms (n {}): p50 {} p95 {} p99 {} max {}; load average {}\n",
        l["wallSecs"].as_f64().unwrap_or(0.0), l["eventsPerSec"].as_f64().unwrap_or(0.0),
        l["executionsPerSec"].as_f64().unwrap_or(0.0),
        lat["n"], lat["p50"], lat["p95"], lat["p99"], lat["max"], l["loadavg"].as_str().unwrap_or("")
    );
    out
}

/// The calls table: per path, calls per unit by operation.
fn calls_text(c: &Value) -> String {
    // A unit that did not occur (no handled message in a run without subscribers) has no
    // row: calls per zero units say nothing.
    let f = |k: &str| c[k].as_f64().unwrap_or(0.0);
    let rows: [(&str, &str, &str, f64); 7] = [
        ("ingest", INGEST, "per ingested event", f("events")),
        ("ingest", INGEST, "per request", f("requests")),
        ("dispatch", DISPATCH, "per stored event", f("storedEvents")),
        ("dispatch", DISPATCH, "per delivered message", f("messages")),
        (
            "handlers + mapping",
            HANDLERS,
            "per handled message",
            f("handledByDomainHandlers"),
        ),
        (
            "read model + mapping",
            PROJECTION,
            "per handled message",
            f("handledByReadModel"),
        ),
        (
            "stream reads (free on AWS)",
            STREAM,
            "per stored event",
            f("storedEvents"),
        ),
    ];
    let mut out = format!(
        "AWS calls (batch {}; {} receives returned {} messages; the rest of the receives were idle long polls)\n",
        c["batch"], c["receivesWithMessages"], c["messagesReceived"]
    );
    out += &format!(
        "{:<27} {:<22} {:>7}  by operation\n",
        "path", "unit", "total"
    );
    for (path, label, unit, div) in rows {
        let Some(ops) = c["counts"][label].as_object().filter(|o| !o.is_empty()) else {
            continue;
        };
        if div == 0.0 {
            out += &format!("{path:<27} {unit:<22} {:>7}  (none in this run)\n", "-");
            continue;
        }
        let total: f64 = ops.values().filter_map(Value::as_f64).sum::<f64>() / div;
        let by: Vec<String> = ops
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", n.as_f64().unwrap_or(0.0) / div))
            .collect();
        out += &format!("{path:<27} {unit:<22} {total:>7.2}  {}\n", by.join(", "));
    }
    let cap = &c["capacity"];
    let units = |k: &str| {
        format!(
            "{} RRU + {} WRU",
            cap[k]["readPerUnit"], cap[k]["writePerUnit"]
        )
    };
    out += &format!(
        "DynamoDB capacity as reported: ingest {} per event; handlers {} and read model {} per handled message (switch reads left out)\n",
        units("ingestPerEvent"),
        units("handlersPerHandled"),
        units("readModelPerHandled")
    );
    out
}
