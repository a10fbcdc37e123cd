//! The SAM template (infra/template.yaml) held to the code, without LocalStack or AWS:
//!
//! - its queues, DLQs, redrive, visibility timeout, table keys, GSIs and stream view are
//!   the ones `event_adapters::topology` gives the local provisioning;
//! - its IAM statements have no wildcard action and no wildcard resource on data services;
//! - it has one function per binary crate under `functions/`, and no other.
//!
//! Change one side without the other and a test here fails with what to add.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use event_adapters::topology::{
    self, GSIS, GSI_PROJECTION, MAX_RECEIVE_COUNT, STREAM_VIEW, TABLE_KEYS, VISIBILITY_TIMEOUT_SECS,
};
use serde_json::{json, Map, Value};

/// The template names everything `lendingos-<StageName>-...`: the local names with the stage.
const PREFIX: &str = "lendingos-${StageName}";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

// ----------------------------------------------------------------------------------------
// Reading the template
// ----------------------------------------------------------------------------------------

/// The template as JSON, with short-form intrinsics in their long form
/// (`!Ref X` -> `{"Ref": "X"}`, `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` ->
/// `{"Fn::Sub": s}`...).
struct Template {
    root: Value,
}

fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                json!(u)
            } else if let Some(i) = n.as_i64() {
                json!(i)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            let inner = yaml_to_json(t.value);
            let (key, value) = match name.as_str() {
                "Ref" | "Condition" => (name.clone(), inner),
                "GetAtt" => {
                    let v = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((a, b)) => json!([a, b]),
                            None => json!([s]),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), v)
                }
                _ => (format!("Fn::{name}"), inner),
            };
            let mut m = Map::new();
            m.insert(key, value);
            Value::Object(m)
        }
    }
}

impl Template {
    fn load() -> Template {
        let path = workspace().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Template::parse(&text)
    }

    fn parse(text: &str) -> Template {
        let y: serde_yaml::Value = serde_yaml::from_str(text).expect("template.yaml is YAML");
        Template {
            root: yaml_to_json(y),
        }
    }

    fn resources(&self) -> &Map<String, Value> {
        self.root["Resources"]
            .as_object()
            .expect("the template has Resources")
    }

    fn of_type(&self, ty: &str) -> Vec<(&str, &Value)> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"] == ty)
            .map(|(id, r)| (id.as_str(), r))
            .collect()
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .unwrap_or_else(|| panic!("no resource {id} in the template"))
    }

    /// A function property, or its value from `Globals.Function`.
    fn function_prop<'a>(&'a self, function: &'a Value, prop: &str) -> &'a Value {
        let own = &function["Properties"][prop];
        if own.is_null() {
            &self.root["Globals"]["Function"][prop]
        } else {
            own
        }
    }

    /// The function's environment, globals merged under its own variables.
    fn env(&self, function: &Value) -> Map<String, Value> {
        let mut env = self.root["Globals"]["Function"]["Environment"]["Variables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(own) = function["Properties"]["Environment"]["Variables"].as_object() {
            env.extend(own.clone());
        }
        env
    }

    fn functions(&self) -> Vec<(&str, &Value)> {
        self.of_type("AWS::Serverless::Function")
    }

    /// The function whose cargo-lambda binary is `binary`.
    fn function_for(&self, binary: &str) -> Option<(&str, &Value)> {
        self.functions()
            .into_iter()
            .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
    }

    /// Alarms on `namespace`/`metric` whose dimension `dim` is `value`.
    fn alarms_on(&self, namespace: &str, metric: &str, dim: &str, value: &Value) -> Vec<&str> {
        self.of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .filter(|(_, a)| {
                let p = &a["Properties"];
                p["Namespace"] == namespace
                    && p["MetricName"] == metric
                    && p["Dimensions"].as_array().is_some_and(|ds| {
                        ds.iter().any(|d| d["Name"] == dim && &d["Value"] == value)
                    })
                    && p["AlarmActions"].as_array().is_some_and(|a| !a.is_empty())
            })
            .map(|(id, _)| id)
            .collect()
    }
}

/// A `!Sub` string or a plain string.
fn sub_or_str(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v["Fn::Sub"].as_str())
}

/// A number written as a number or a string (CloudFormation accepts both).
fn num(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn get_att(id: &str, att: &str) -> Value {
    json!({"Fn::GetAtt": [id, att]})
}

fn reference(id: &str) -> Value {
    json!({"Ref": id})
}

/// `Action` / `Resource` as a list, whether written as one value or a list.
fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

// ----------------------------------------------------------------------------------------
// (a) topology: queues, DLQs, table
// ----------------------------------------------------------------------------------------

#[test]
fn queues_and_dlqs_match_the_topology() {
    let t = Template::load();
    let expected = topology::queues(PREFIX);
    assert!(!expected.is_empty(), "topology has no domains");

    // Every FIFO queue of the template, by name.
    let mut fifo: BTreeMap<String, &str> = BTreeMap::new();
    for (id, q) in t.of_type("AWS::SQS::Queue") {
        if q["Properties"]["FifoQueue"] == json!(true) {
            let name = sub_or_str(&q["Properties"]["QueueName"])
                .unwrap_or_else(|| panic!("FIFO queue {id} has no literal QueueName"));
            fifo.insert(name.to_string(), id);
        }
    }
    let want: BTreeSet<String> = expected
        .iter()
        .flat_map(|p| [p.queue.clone(), p.dlq.clone()])
        .collect();
    let have: BTreeSet<String> = fifo.keys().cloned().collect();
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "FIFO queues of infra/template.yaml differ from event_adapters::topology::queues(\"{PREFIX}\"):\n  \
         missing from the template: {missing:?}\n  in the template but not routed by core: {extra:?}\n  \
         (copy the \"DOMAIN payment\" block of the template for each missing domain)"
    );

    let dispatch = t.function_for("dispatch").expect("a dispatch function").1;
    let dispatch_env = t.env(dispatch);
    let outputs = &t.root["Outputs"];

    for pair in &expected {
        let queue_id = fifo[&pair.queue];
        let dlq_id = fifo[&pair.dlq];
        let q = &t.resource(queue_id)["Properties"];
        let d = &t.resource(dlq_id)["Properties"];
        let what = format!("queue {queue_id} ({})", pair.queue);

        assert_eq!(
            num(&q["VisibilityTimeout"]),
            Some(u64::from(VISIBILITY_TIMEOUT_SECS)),
            "{what}: VisibilityTimeout must be topology::VISIBILITY_TIMEOUT_SECS"
        );
        let redrive = &q["RedrivePolicy"];
        assert_eq!(
            num(&redrive["maxReceiveCount"]),
            Some(u64::from(MAX_RECEIVE_COUNT)),
            "{what}: RedrivePolicy.maxReceiveCount must be topology::MAX_RECEIVE_COUNT"
        );
        assert_eq!(
            redrive["deadLetterTargetArn"],
            get_att(dlq_id, "Arn"),
            "{what}: must redrive to its own DLQ {dlq_id}"
        );
        assert_ne!(
            q["ContentBasedDeduplication"],
            json!(true),
            "{what}: dispatch sets the dedup id (eventId); content-based dedup would drop equal bodies"
        );
        assert!(
            d["RedrivePolicy"].is_null(),
            "DLQ {dlq_id} must not redrive further"
        );
        let retention = |p: &Value| num(&p["MessageRetentionPeriod"]).unwrap_or(345_600);
        assert!(
            retention(d) >= retention(q),
            "DLQ {dlq_id} must keep messages at least as long as {queue_id} (FIFO keeps the enqueue time)"
        );

        // Any message in the DLQ alarms.
        assert!(
            !t.alarms_on(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                &get_att(dlq_id, "QueueName")
            )
            .is_empty(),
            "DLQ {dlq_id} has no ApproximateNumberOfMessagesVisible alarm with an action"
        );

        // Dispatch is told the queue URL.
        let var = format!("QUEUE_URL_{}", pair.domain.to_ascii_uppercase());
        assert_eq!(
            dispatch_env.get(&var),
            Some(&reference(queue_id)),
            "dispatch needs {var}: !Ref {queue_id}"
        );

        // The queues are outputs.
        let out_refs: Vec<&Value> = outputs
            .as_object()
            .map(|o| o.values().map(|v| &v["Value"]).collect())
            .unwrap_or_default();
        for id in [queue_id, dlq_id] {
            assert!(
                out_refs.contains(&&reference(id)),
                "no output gives the URL of {id}"
            );
        }
    }

    // Dispatch gets no queue URL for a domain that core does not route.
    let routed: BTreeSet<String> = expected
        .iter()
        .map(|p| format!("QUEUE_URL_{}", p.domain.to_ascii_uppercase()))
        .collect();
    for var in dispatch_env.keys().filter(|k| k.starts_with("QUEUE_URL_")) {
        assert!(
            routed.contains(var),
            "dispatch has {var} but core routes no such domain"
        );
    }
}

#[test]
fn table_matches_the_topology() {
    let t = Template::load();
    let tables = t.of_type("AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "exactly one table (the event history)");
    let (id, table) = tables[0];
    let p = &table["Properties"];

    // Same name scheme as the local provisioning: `<prefix>-events`.
    assert_eq!(
        sub_or_str(&p["TableName"]),
        Some(format!("{PREFIX}-events").as_str()),
        "{id}: TableName"
    );

    let types: BTreeMap<&str, &str> = p["AttributeDefinitions"]
        .as_array()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap_or(""),
                a["AttributeType"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let keys = |schema: &Value| -> Vec<(String, String)> {
        schema
            .as_array()
            .map(|ks| {
                ks.iter()
                    .map(|k| {
                        (
                            k["AttributeName"].as_str().unwrap_or("").to_string(),
                            k["KeyType"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let pair = |h: &str, r: &str| {
        vec![
            (h.to_string(), "HASH".to_string()),
            (r.to_string(), "RANGE".to_string()),
        ]
    };

    assert_eq!(
        keys(&p["KeySchema"]),
        pair(TABLE_KEYS.0, TABLE_KEYS.1),
        "{id}: KeySchema"
    );
    assert_eq!(
        types.get(TABLE_KEYS.0),
        Some(&"S"),
        "{}: partition key type",
        TABLE_KEYS.0
    );
    assert_eq!(
        types.get(TABLE_KEYS.1),
        Some(&"N"),
        "{}: sort key type",
        TABLE_KEYS.1
    );

    let gsis: BTreeMap<String, (Vec<(String, String)>, String)> = p["GlobalSecondaryIndexes"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| {
                    (
                        g["IndexName"].as_str().unwrap_or("").to_string(),
                        (
                            keys(&g["KeySchema"]),
                            g["Projection"]["ProjectionType"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let want: BTreeMap<String, (Vec<(String, String)>, String)> = GSIS
        .iter()
        .map(|(name, h, r)| (name.to_string(), (pair(h, r), GSI_PROJECTION.to_string())))
        .collect();
    assert_eq!(
        gsis, want,
        "{id}: GlobalSecondaryIndexes differ from topology::GSIS"
    );
    for (_, h, r) in GSIS {
        for a in [h, r] {
            assert_eq!(
                types.get(a),
                Some(&"S"),
                "{id}: GSI key {a} must be a string"
            );
        }
    }
    let key_attrs: BTreeSet<&str> = [TABLE_KEYS.0, TABLE_KEYS.1]
        .into_iter()
        .chain(GSIS.iter().flat_map(|(_, h, r)| [*h, *r]))
        .collect();
    let defined: BTreeSet<&str> = types.keys().copied().collect();
    assert_eq!(
        defined, key_attrs,
        "{id}: AttributeDefinitions must be exactly the key attributes"
    );

    assert_eq!(
        p["StreamSpecification"]["StreamViewType"], STREAM_VIEW,
        "{id}: StreamViewType must be topology::STREAM_VIEW"
    );
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{id}: on-demand");
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
        "{id}: point-in-time recovery"
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{id}: SSE");
    assert_eq!(
        p["DeletionProtectionEnabled"], true,
        "{id}: deletion protection"
    );
    assert_eq!(table["DeletionPolicy"], "Retain", "{id}: DeletionPolicy");

    // TTL on the housekeeping attribute only, never on anything every event carries.
    let ttl = &p["TimeToLiveSpecification"];
    assert_eq!(ttl["Enabled"], true, "{id}: TTL enabled");
    assert_eq!(ttl["AttributeName"], "expiresAt", "{id}: TTL attribute");
    assert!(!key_attrs.contains("expiresAt"));
}

// ----------------------------------------------------------------------------------------
// (b) IAM
// ----------------------------------------------------------------------------------------

/// Every IAM statement in `v` (policy documents anywhere in the template), with its path.
fn statements<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "Statement" {
                    for (i, s) in as_list(child).into_iter().enumerate() {
                        out.push((format!("{path}.Statement[{i}]"), s));
                    }
                } else {
                    statements(child, format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                statements(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

const DATA_SERVICES: &[&str] = &["dynamodb:", "sqs:"];

/// Every broken least-privilege rule, as a message.
fn iam_violations(t: &Template) -> Vec<String> {
    let resource_ids: BTreeSet<&str> = t.resources().keys().map(String::as_str).collect();
    let mut found = Vec::new();
    statements(&t.root["Resources"], "Resources".into(), &mut found);
    let mut bad = Vec::new();
    for (path, s) in &found {
        if s["Effect"] != "Allow" {
            continue;
        }
        if !s["NotAction"].is_null() || !s["NotResource"].is_null() {
            bad.push(format!(
                "{path}: NotAction/NotResource grants everything else"
            ));
        }
        let actions: Vec<String> = as_list(&s["Action"])
            .into_iter()
            .map(|a| a.as_str().unwrap_or("<not a string>").to_ascii_lowercase())
            .collect();
        let mut data = false;
        for a in &actions {
            if a == "*" || a.ends_with(":*") {
                bad.push(format!("{path}: wildcard action {a}"));
            }
            if DATA_SERVICES.iter().any(|svc| a.starts_with(svc)) {
                data = true;
                if a.contains('*') {
                    bad.push(format!("{path}: wildcard data action {a}"));
                }
            }
        }
        if !data {
            continue;
        }
        // A data action must name resources of this stack: !GetAtt/!Ref of a resource, or a
        // !Sub on one (e.g. "${EventsTable.Arn}/index/byType"), never "*".
        let resources = as_list(&s["Resource"]);
        if resources.is_empty() {
            bad.push(format!("{path}: data actions without Resource"));
        }
        for r in resources {
            let ok = if let Some(att) = r["Fn::GetAtt"].as_array() {
                att.first()
                    .and_then(Value::as_str)
                    .is_some_and(|id| resource_ids.contains(id))
            } else if let Some(id) = r["Ref"].as_str() {
                resource_ids.contains(id)
            } else if let Some(s) = r["Fn::Sub"].as_str() {
                let names_resource = s
                    .split("${")
                    .skip(1)
                    .filter_map(|x| x.split(['}', '.']).next())
                    .any(|id| resource_ids.contains(id));
                let wild = s.trim_end_matches("/stream/*").contains('*');
                names_resource && !wild
            } else {
                false
            };
            if !ok {
                bad.push(format!(
                    "{path}: data actions {actions:?} on {r} (name a table, index or queue of this stack)"
                ));
            }
        }
    }

    // SAM attaches AWS managed policies with Resource "*" (AWSLambdaSQSQueueExecutionRole,
    // AWSLambdaDynamoDBExecutionRole) to the roles it makes: every function brings its own.
    for (id, f) in t.functions() {
        if f["Properties"]["Role"].is_null() {
            bad.push(format!(
                "{id}: no Role (SAM would attach managed policies with Resource \"*\")"
            ));
        }
        if !f["Properties"]["Policies"].is_null() {
            bad.push(format!(
                "{id}: Policies is ignored with Role; put statements in the role"
            ));
        }
    }
    for (id, r) in t.of_type("AWS::IAM::Role") {
        for arn in as_list(&r["Properties"]["ManagedPolicyArns"]) {
            let s = arn.to_string();
            if [
                "SQS",
                "DynamoDB",
                "FullAccess",
                "Administrator",
                "PowerUser",
            ]
            .iter()
            .any(|k| s.contains(k))
            {
                bad.push(format!(
                    "{id}: managed policy {s} is broader than the function needs"
                ));
            }
        }
    }
    bad
}

#[test]
fn iam_has_no_wildcards_on_data_services() {
    let t = Template::load();
    let mut all = Vec::new();
    statements(&t.root["Resources"], String::new(), &mut all);
    assert!(
        all.len() >= 6,
        "found only {} IAM statements: the walk is broken",
        all.len()
    );
    let bad = iam_violations(&t);
    assert!(
        bad.is_empty(),
        "least-privilege violations:\n  {}",
        bad.join("\n  ")
    );
}

/// The IAM check itself catches what it must (so the test above can fail).
#[test]
fn iam_check_rejects_wildcards() {
    let base = std::fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let cases = [
        ("- dynamodb:BatchGetItem", "- dynamodb:*"),
        ("- sqs:ChangeMessageVisibility", "- sqs:Change*"),
        ("Action: sqs:SendMessage", "Action: \"*\""),
        ("Resource: !GetAtt PaymentDlq.Arn", "Resource: \"*\""),
        (
            "Resource: !Sub ${EventsTable.Arn}/stream/*",
            "Resource: !Sub arn:${AWS::Partition}:dynamodb:*:*:table/*",
        ),
    ];
    for (from, to) in cases {
        assert!(
            base.contains(from),
            "mutation anchor {from:?} not in the template"
        );
        let mutated = Template::parse(&base.replacen(from, to, 1));
        assert!(
            !iam_violations(&mutated).is_empty(),
            "the IAM check missed {to:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------
// (c) functions
// ----------------------------------------------------------------------------------------

/// Binary crates under functions/: folders with src/main.rs, by package name.
fn binaries() -> BTreeSet<String> {
    let dir = workspace().join("functions");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("functions/") {
        let path = entry.expect("dir entry").path();
        if !path.join("src/main.rs").is_file() {
            continue;
        }
        let manifest = std::fs::read_to_string(path.join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            !manifest.contains("[[bin]]"),
            "{}: explicit [[bin]] targets: teach this test their names",
            path.display()
        );
        let name = manifest
            .split("[package]")
            .nth(1)
            .and_then(|pkg| {
                pkg.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| panic!("{}: no package name", path.display()));
        out.insert(name);
    }
    out
}

#[test]
fn one_function_per_binary_crate() {
    let t = Template::load();
    let bins = binaries();
    assert!(
        bins.contains("ingest") && bins.contains("dispatch"),
        "found {bins:?}"
    );
    let mut in_template = BTreeSet::new();
    for (id, f) in t.functions() {
        assert_eq!(
            f["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}: Metadata.BuildMethod"
        );
        let bin = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no Metadata.BuildProperties.Binary"));
        assert!(
            in_template.insert(bin.to_string()),
            "binary {bin} deployed twice"
        );
    }
    let missing: Vec<_> = bins.difference(&in_template).collect();
    let extra: Vec<_> = in_template.difference(&bins).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "functions of infra/template.yaml differ from the binary crates under functions/:\n  \
         no function in the template for: {missing:?}\n  no crate (sam build would fail) for: {extra:?}"
    );
}

#[test]
fn every_function_is_configured_for_production() {
    let t = Template::load();
    let code_uri = t.root["Globals"]["Function"]["CodeUri"]
        .as_str()
        .map(str::to_string);
    for (id, f) in t.functions() {
        let p = &f["Properties"];
        assert_eq!(
            t.function_prop(f, "Runtime"),
            "provided.al2023",
            "{id}: Runtime"
        );
        assert_eq!(
            t.function_prop(f, "Architectures"),
            &json!(["arm64"]),
            "{id}: Architectures"
        );
        assert_eq!(t.function_prop(f, "Handler"), "bootstrap", "{id}: Handler");
        let uri = p["CodeUri"]
            .as_str()
            .map(str::to_string)
            .or(code_uri.clone());
        let uri = uri.unwrap_or_else(|| panic!("{id}: no CodeUri"));
        let manifest =
            std::fs::read_to_string(workspace().join("infra").join(&uri).join("Cargo.toml"))
                .unwrap_or_else(|_| panic!("{id}: CodeUri {uri} (from infra/) has no Cargo.toml"));
        assert!(
            manifest.contains("[workspace]"),
            "{id}: CodeUri must be the workspace root"
        );
        assert!(num(&p["Timeout"]).is_some(), "{id}: an explicit Timeout");
        assert!(
            num(t.function_prop(f, "MemorySize")).is_some(),
            "{id}: MemorySize"
        );

        // JSON logs into a log group with the retention parameter.
        assert_eq!(
            p["LoggingConfig"]["LogFormat"], "JSON",
            "{id}: LoggingConfig.LogFormat"
        );
        let group = p["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup must !Ref a log group"));
        let lg = t.resource(group);
        assert_eq!(lg["Type"], "AWS::Logs::LogGroup");
        assert_eq!(
            lg["Properties"]["RetentionInDays"],
            reference("LogRetentionDays"),
            "{group}: retention"
        );

        // Alarms on errors and throttles.
        for metric in ["Errors", "Throttles"] {
            assert!(
                !t.alarms_on("AWS/Lambda", metric, "FunctionName", &reference(id))
                    .is_empty(),
                "{id}: no {metric} alarm"
            );
        }

        let env = t.env(f);
        assert_eq!(
            env.get("EVENTS_TABLE"),
            Some(&reference("EventsTable")),
            "{id}: EVENTS_TABLE"
        );
        // One bundle file instead of a certificate-directory scan at cold start.
        assert_eq!(
            env.get("SSL_CERT_FILE").and_then(Value::as_str),
            Some("/etc/pki/tls/certs/ca-bundle.crt"),
            "{id}: SSL_CERT_FILE (AL2023's CA bundle)"
        );
        assert!(
            !env.contains_key("TENANT_FROM_HEADER"),
            "{id}: TENANT_FROM_HEADER must not be set on AWS (the tenant comes from the JWT)"
        );
    }
}

#[test]
fn domain_handlers_consume_their_queue_and_dead_letter_to_their_dlq() {
    let t = Template::load();
    let pairs = topology::queues(PREFIX);
    let queue_ids: BTreeMap<String, &str> = t
        .of_type("AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(id, q)| {
            sub_or_str(&q["Properties"]["QueueName"]).map(|n| (n.to_string(), id))
        })
        .collect();
    let mut handlers = 0;
    for bin in binaries().iter().filter(|b| b.ends_with("-handler")) {
        handlers += 1;
        let domain = bin.trim_end_matches("-handler");
        let pair = pairs
            .iter()
            .find(|p| p.domain == domain)
            .unwrap_or_else(|| panic!("{bin}: core routes no events to domain {domain}"));
        let (id, f) = t
            .function_for(bin)
            .unwrap_or_else(|| panic!("no function for {bin}"));
        let find = |name: &str| {
            *queue_ids
                .get(name)
                .unwrap_or_else(|| panic!("{bin}: no queue named {name} in the template"))
        };
        let (queue_id, dlq_id) = (find(&pair.queue), find(&pair.dlq));

        let timeout = num(&f["Properties"]["Timeout"]).expect("Timeout");
        assert!(
            timeout * 6 <= u64::from(VISIBILITY_TIMEOUT_SECS),
            "{id}: Timeout {timeout}s; the visibility timeout ({VISIBILITY_TIMEOUT_SECS}s) must be at least 6x"
        );
        let up = domain.to_ascii_uppercase();
        let env = t.env(f);
        let var = format!("DLQ_URL_{up}");
        assert_eq!(env.get(&var), Some(&reference(dlq_id)), "{id}: {var}");
        let var = format!("QUEUE_URL_{up}");
        assert_eq!(
            env.get(&var),
            Some(&reference(queue_id)),
            "{id}: {var} (its own queue, for visibility backoff)"
        );

        let sqs: Vec<&Value> = f["Properties"]["Events"]
            .as_object()
            .map(|e| e.values().filter(|e| e["Type"] == "SQS").collect())
            .unwrap_or_default();
        assert_eq!(sqs.len(), 1, "{id}: one SQS event source");
        let e = &sqs[0]["Properties"];
        assert_eq!(
            e["Queue"],
            get_att(queue_id, "Arn"),
            "{id}: consumes {queue_id}"
        );
        assert_eq!(
            e["FunctionResponseTypes"],
            json!(["ReportBatchItemFailures"]),
            "{id}"
        );
        let batch = num(&e["BatchSize"]).unwrap_or(0);
        assert!(
            (1..=10).contains(&batch),
            "{id}: BatchSize 1-10 on FIFO, got {batch}"
        );
        let maxc = num(&e["ScalingConfig"]["MaximumConcurrency"]).unwrap_or(0);
        assert!(
            maxc >= 2,
            "{id}: ScalingConfig.MaximumConcurrency (2 or more) must be set"
        );
    }
    assert!(handlers > 0, "no <domain>-handler crate found");
}

#[test]
fn dispatch_reads_the_stream_safely() {
    let t = Template::load();
    let (id, f) = t.function_for("dispatch").expect("dispatch function");
    let streams: Vec<&Value> = f["Properties"]["Events"]
        .as_object()
        .map(|e| e.values().filter(|e| e["Type"] == "DynamoDB").collect())
        .unwrap_or_default();
    assert_eq!(streams.len(), 1, "{id}: one DynamoDB stream event source");
    let e = &streams[0]["Properties"];
    assert_eq!(e["Stream"], get_att("EventsTable", "StreamArn"));
    assert_eq!(
        e["BisectBatchOnFunctionError"], true,
        "{id}: bisect on error"
    );
    let retries = e["MaximumRetryAttempts"].as_i64().unwrap_or(-1);
    assert!(retries >= 0, "{id}: MaximumRetryAttempts must be bounded");
    // Batched sends: <= 0.1 SQS calls per delivered message needs >= 10 events per batch
    // and queue, so the mapping waits (a parameter, default 1 s) to gather them.
    assert_eq!(
        e["MaximumBatchingWindowInSeconds"],
        reference("DispatchBatchingWindowSeconds")
    );
    assert_eq!(
        num(&t.root["Parameters"]["DispatchBatchingWindowSeconds"]["Default"]),
        Some(1),
        "the default batching window"
    );
    let dest = &e["DestinationConfig"]["OnFailure"]["Destination"];
    let dest_id = dest["Fn::GetAtt"][0]
        .as_str()
        .expect("OnFailure destination is a queue of the stack");
    assert_eq!(t.resource(dest_id)["Type"], "AWS::SQS::Queue");
    assert_eq!(
        e["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(
        !t.alarms_on(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            &get_att(dest_id, "QueueName")
        )
        .is_empty(),
        "{dest_id}: no alarm"
    );
    assert!(
        !t.alarms_on("AWS/Lambda", "IteratorAge", "FunctionName", &reference(id))
            .is_empty(),
        "{id}: no IteratorAge alarm"
    );

    // Only inserted event items reach dispatch.
    let filters = e["FilterCriteria"]["Filters"]
        .as_array()
        .expect("FilterCriteria");
    assert_eq!(filters.len(), 1);
    let pattern: Value = serde_json::from_str(filters[0]["Pattern"].as_str().expect("Pattern"))
        .expect("the filter pattern is JSON");
    assert_eq!(pattern["eventName"], json!(["INSERT"]));
    assert_eq!(
        pattern["dynamodb"]["NewImage"]["kind"]["S"],
        json!(["event"])
    );
}

#[test]
fn the_api_is_authenticated_throttled_and_routes_to_ingest() {
    let t = Template::load();
    let apis = t.of_type("AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "one HTTP API");
    let (api_id, api) = apis[0];
    let p = &api["Properties"];
    let default_auth = p["Auth"]["DefaultAuthorizer"]
        .as_str()
        .expect("a default authorizer");
    let auth = &p["Auth"]["Authorizers"][default_auth];
    assert!(!auth["JwtConfiguration"]["issuer"].is_null(), "JWT issuer");
    assert!(
        !auth["JwtConfiguration"]["audience"].is_null(),
        "JWT audience"
    );
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(
            !p["DefaultRouteSettings"][limit].is_null(),
            "{api_id}: DefaultRouteSettings.{limit}"
        );
    }
    assert_eq!(p["StageName"], reference("StageName"));

    let (id, f) = t.function_for("ingest").expect("ingest function");
    let routes: BTreeSet<String> = f["Properties"]["Events"]
        .as_object()
        .expect("ingest events")
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let ep = &e["Properties"];
            assert_eq!(
                ep["ApiId"],
                reference(api_id),
                "{id}: every route on {api_id}"
            );
            assert!(
                ep["Auth"].is_null(),
                "{id}: a route overrides the authorizer: {ep}"
            );
            match (ep["Method"].as_str(), ep["Path"].as_str()) {
                (Some(m), Some(path)) => format!("{} {path}", m.to_ascii_uppercase()),
                _ => "$default".to_string(),
            }
        })
        .collect();
    for r in [
        "POST /events",
        "GET /aggregates/{aggregateType}/{aggregateId}/events",
        "GET /aggregates/{aggregateType}/{aggregateId}/state",
        "$default",
    ] {
        assert!(routes.contains(r), "{id}: no route {r} (has {routes:?})");
    }
    assert_eq!(
        t.env(f).get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"),
        Some(&json!("true")),
        "{id}: the named stage must be stripped from the path"
    );
}

#[test]
fn parameters_and_outputs() {
    let t = Template::load();
    for p in ["StageName", "LogRetentionDays"] {
        assert!(t.root["Parameters"][p].is_object(), "parameter {p}");
    }
    for o in ["ApiUrl", "EventsTableName"] {
        assert!(t.root["Outputs"][o].is_object(), "output {o}");
    }
}

#[test]
fn the_dashboard_shows_every_alarm_and_the_emitted_metrics() {
    let t = Template::load();
    let body = t.resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is a !Sub string");
    let dashboard: Value = serde_json::from_str(body).expect("the dashboard body is JSON");
    let text = dashboard.to_string();
    for (id, _) in t.of_type("AWS::CloudWatch::Alarm") {
        assert!(
            text.contains(&format!("${{{id}.Arn}}")),
            "the dashboard's alarm widget lacks {id}"
        );
    }
    for metric in [
        "EventsIngested",
        "EventsDispatched",
        "EventsProcessed",
        "HandlerFailures",
        "HandlerRetries",
        "EventsDeadLettered",
        "HandlerDuration",
        "HandlerLag",
    ] {
        assert!(
            text.contains(&format!("{{LendingOS/Events}} MetricName=\\\"{metric}\\\"")),
            "the dashboard does not chart {metric}"
        );
    }
}
