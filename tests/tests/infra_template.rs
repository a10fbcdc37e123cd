//! The SAM template (infra/template.yaml) held to the code, without LocalStack or AWS:
//!
//! - its queues, DLQs, redrive, visibility timeout, table keys, GSIs and stream view are
//!   the ones `event_adapters::topology` gives the local provisioning;
//! - its IAM statements have no wildcard action and no wildcard resource on data services;
//! - it has one function per binary crate under `functions/`, and no other (plus the
//!   operator function, which runs the ingest binary with another role);
//! - its HTTP API routes and their scopes are `event_adapters::http::scopes::ROUTES`, operator
//!   routes on the operator function with a low throttle; the only routes without the JWT
//!   authorizer are the public ones of ROUTES and the console's static pages
//!   (`event_adapters::http::console::GATEWAY_ROUTES`), all on the ingest function;
//! - queue policies let only the right roles send to each queue, over TLS only, and each
//!   DLQ accepts redrives from its own queue only;
//! - every table write is limited by `dynamodb:LeadingKeys` to the key families the role
//!   owns, and no role may update or delete an event item;
//! - one customer-managed key encrypts table, queues, logs and topic; dead letters,
//!   failure queues and access logs are retained; the alarms and parameters a production
//!   deploy needs are there.
//!
//! Each check is a function returning what is wrong, and a `*_rejects_*` test mutates the
//! template to show that the check fails when it must.
//!
//! Change one side without the other and a test here fails with what to add.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use event_adapters::http::console::GATEWAY_ROUTES as CONSOLE_ROUTES;
use event_adapters::http::scopes::{FixedScope, Scope, ROUTES};
use event_adapters::store::layout;
use event_adapters::topology::{
    self, GSIS, GSI_PROJECTION, MAX_RECEIVE_COUNT, STREAM_VIEW, TABLE_KEYS, VISIBILITY_TIMEOUT_SECS,
};
use serde_json::{json, Map, Value};

/// The template names everything `lendingos-<StageName>-...`: the local names with the stage.
const PREFIX: &str = "lendingos-${StageName}";

/// The function serving the operator routes: the ingest binary again, with its own role.
const OPERATOR_FUNCTION: &str = "OperatorFunction";

/// The binary delivering to subscriptions (not a domain handler: it consumes the delivery
/// queue).
const DELIVERY_HANDLER: &str = "delivery-handler";

/// The binary keeping the read models (a domain function on the projection queue that
/// writes summaries, never events).
const PROJECTION_HANDLER: &str = "projection-handler";
/// The binary running read-model rebuild jobs, one step per message of its own queue.
const PROJECTION_REBUILD: &str = "projection-rebuild";

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

    /// The function whose cargo-lambda binary is `binary` (for `ingest`, the client API,
    /// not the operator function).
    fn function_for(&self, binary: &str) -> Option<(&str, &Value)> {
        self.functions().into_iter().find(|(id, f)| {
            f["Metadata"]["BuildProperties"]["Binary"] == binary && *id != OPERATOR_FUNCTION
        })
    }

    /// The logical id of a function's role (`Role: !GetAtt XRole.Arn`).
    fn role_of(&self, function_id: &str) -> String {
        self.resource(function_id)["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function_id}: Role must be !GetAtt <role>.Arn"))
            .to_string()
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
    let (delivery, delivery_dlq) = topology::delivery_queues(PREFIX);
    let (rebuild, rebuild_dlq) = topology::rebuild_queues(PREFIX);
    let want: BTreeSet<String> = expected
        .iter()
        .flat_map(|p| [p.queue.clone(), p.dlq.clone()])
        .chain([delivery, delivery_dlq, rebuild.clone(), rebuild_dlq.clone()])
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

    // The domain queues, and the rebuild steps' queue (no domain: dispatch never routes
    // to it).
    let pairs = expected
        .iter()
        .map(|p| (Some(p.domain), &p.queue, &p.dlq))
        .chain([(None, &rebuild, &rebuild_dlq)]);
    for (domain, queue, dlq) in pairs {
        let queue_id = fifo[queue];
        let dlq_id = fifo[dlq];
        let q = &t.resource(queue_id)["Properties"];
        let d = &t.resource(dlq_id)["Properties"];
        let what = format!("queue {queue_id} ({queue})");

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

        // Dispatch is told a domain queue's URL.
        if let Some(domain) = domain {
            let var = format!("QUEUE_URL_{}", domain.as_str().to_ascii_uppercase());
            assert_eq!(
                dispatch_env.get(&var),
                Some(&reference(queue_id)),
                "dispatch needs {var}: !Ref {queue_id}"
            );
        }

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
        .map(|p| format!("QUEUE_URL_{}", p.domain.as_str().to_ascii_uppercase()))
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
        // The key policy's account statement is KMS's default: it delegates the key to IAM
        // (no IAM policy here grants kms:*; the roles get Decrypt/GenerateDataKey on it).
        if path.contains(".KeyPolicy.") && s["Principal"]["AWS"] == account_root() {
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
        (
            "Action: sqs:SendMessage\n                Resource: !GetAtt PaymentDlq.Arn",
            "Action: sqs:SendMessage\n                Resource: \"*\"",
        ),
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
        if id == OPERATOR_FUNCTION {
            assert_eq!(bin, "ingest", "{id} runs the ingest binary (its router)");
            continue;
        }
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
    for bin in binaries()
        .iter()
        .filter(|b| b.ends_with("-handler") && *b != DELIVERY_HANDLER)
    {
        handlers += 1;
        let domain = bin.trim_end_matches("-handler");
        let pair = pairs
            .iter()
            .find(|p| p.domain.as_str() == domain)
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
        assert_eq!(
            e["ScalingConfig"]["MaximumConcurrency"],
            reference("HandlerMaximumConcurrency"),
            "{id}: ScalingConfig.MaximumConcurrency is the HandlerMaximumConcurrency parameter"
        );
        assert_eq!(
            f["Properties"]["ReservedConcurrentExecutions"],
            json!({"Fn::If": ["HasHandlerReservedConcurrency", reference("HandlerReservedConcurrency"), reference("AWS::NoValue")]}),
            "{id}: reserved concurrency is the HandlerReservedConcurrency parameter (0 = none)"
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

fn account_root() -> Value {
    json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"})
}

/// Every statement of a role's inline policies.
fn role_statements<'a>(t: &'a Template, role_id: &str) -> Vec<&'a Value> {
    let mut found = Vec::new();
    statements(
        &t.resource(role_id)["Properties"]["Policies"],
        String::new(),
        &mut found,
    );
    found.into_iter().map(|(_, s)| s).collect()
}

/// `Action` of a statement, lower-cased.
fn actions(s: &Value) -> Vec<String> {
    as_list(&s["Action"])
        .into_iter()
        .map(|a| a.as_str().unwrap_or("").to_ascii_lowercase())
        .collect()
}

/// Apply `(from, to)` to the template text (first occurrence) and return the violations
/// `check` finds; panics if `from` is not in the template (a stale mutation).
fn mutated_violations(
    base: &str,
    from: &str,
    to: &str,
    check: fn(&Template) -> Vec<String>,
) -> Vec<String> {
    assert!(
        base.contains(from),
        "mutation anchor {from:?} not in the template"
    );
    check(&Template::parse(&base.replacen(from, to, 1)))
}

fn template_text() -> String {
    std::fs::read_to_string(workspace().join("infra/template.yaml")).expect("template")
}

// ----------------------------------------------------------------------------------------
// (d) the HTTP API: routes and scopes are event_adapters::http::scopes::ROUTES
// ----------------------------------------------------------------------------------------

/// One `HttpApi` event of a function: `POST /events` or `$default`.
struct ApiRoute {
    function: String,
    key: String,
    props: Value,
}

fn api_routes(t: &Template) -> Vec<ApiRoute> {
    let mut out = Vec::new();
    for (id, f) in t.functions() {
        let Some(events) = f["Properties"]["Events"].as_object() else {
            continue;
        };
        for e in events.values().filter(|e| e["Type"] == "HttpApi") {
            let p = &e["Properties"];
            let key = match (p["Method"].as_str(), p["Path"].as_str()) {
                (Some(m), Some(path)) => format!("{} {path}", m.to_ascii_uppercase()),
                _ => "$default".to_string(),
            };
            out.push(ApiRoute {
                function: id.to_string(),
                key,
                props: p.clone(),
            });
        }
    }
    out
}

fn is_operator_scope(scope: FixedScope) -> bool {
    matches!(
        scope,
        FixedScope::OpsReplay
            | FixedScope::OpsDeadLetters
            | FixedScope::OpsHandlers
            | FixedScope::SubscriptionsAdmin
    )
}

/// The scopes API Gateway must accept on a route that needs `scope`: `POST /events` also
/// takes `events:write:<domain>` for every domain with a client-published type (the router
/// checks each type).
fn gateway_scopes(scope: FixedScope) -> BTreeSet<String> {
    let mut scopes = BTreeSet::from([scope.scope().to_string()]);
    if scope == FixedScope::EventsWrite {
        scopes.extend(
            lending_events::catalog::CATALOG
                .iter()
                .filter(|spec| spec.client_may_publish())
                .map(|spec| Scope::EventsWriteDomain(spec.domain.to_string()).to_string()),
        );
    }
    scopes
}

/// Everything wrong with the API's routes, as messages.
fn route_violations(t: &Template) -> Vec<String> {
    let mut bad = Vec::new();
    let apis = t.of_type("AWS::Serverless::HttpApi");
    let [(api_id, api)] = apis.as_slice() else {
        return vec![format!("{} HTTP APIs, want one", apis.len())];
    };
    let p = &api["Properties"];
    let default_auth = p["Auth"]["DefaultAuthorizer"].as_str().unwrap_or("");
    let jwt = &p["Auth"]["Authorizers"][default_auth]["JwtConfiguration"];
    if jwt["issuer"].is_null() || jwt["audience"].is_null() {
        bad.push(format!(
            "{api_id}: the default authorizer must be a JWT authorizer (issuer, audience)"
        ));
    }
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        if p["DefaultRouteSettings"][limit].is_null() {
            bad.push(format!("{api_id}: DefaultRouteSettings.{limit}"));
        }
    }
    let ingest = t
        .function_for("ingest")
        .map(|(id, _)| id.to_string())
        .unwrap_or_default();

    let mut seen = BTreeSet::new();
    for r in api_routes(t) {
        let what = format!("{} ({})", r.key, r.function);
        if r.props["ApiId"] != reference(api_id) {
            bad.push(format!("{what}: not on {api_id}"));
        }
        if !seen.insert(r.key.clone()) {
            bad.push(format!("{what}: route declared twice"));
        }
        let auth = &r.props["Auth"];
        let authorizer = auth["Authorizer"].as_str();
        let scopes: BTreeSet<String> = as_list(&auth["AuthorizationScopes"])
            .into_iter()
            .map(|s| s.as_str().unwrap_or("<not a string>").to_string())
            .collect();
        if authorizer.is_some_and(|a| a != default_auth && a != "NONE") {
            bad.push(format!("{what}: another authorizer {authorizer:?}"));
        }
        if r.key == "$default" {
            if !auth.is_null() {
                bad.push(format!(
                    "{what}: $default keeps the default authorizer, no scopes"
                ));
            }
            if r.function != ingest {
                bad.push(format!(
                    "{what}: $default must reach ingest (no queue, no DLQ)"
                ));
            }
            continue;
        }
        // The console's static pages: no authorizer (they carry no data; the page sends
        // the operator's token to the data routes), no scopes, on ingest (no queue).
        if CONSOLE_ROUTES.contains(&r.key.as_str()) {
            if authorizer != Some("NONE") || !scopes.is_empty() {
                bad.push(format!(
                    "{what}: a console page: `Auth: {{Authorizer: NONE}}`, no scopes"
                ));
            }
            if r.function != ingest {
                bad.push(format!("{what}: console pages are served by ingest"));
            }
            continue;
        }
        let (method, path) = r.key.split_once(' ').unwrap_or_default();
        let Some(entry) = ROUTES.iter().find(|e| e.method == method && e.path == path) else {
            bad.push(format!(
                "{what}: not in event_adapters::http::scopes::ROUTES (add it there, with its scope)"
            ));
            continue;
        };
        match entry.scope {
            None => {
                if authorizer != Some("NONE") || !scopes.is_empty() {
                    bad.push(format!(
                        "{what}: a public route of ROUTES: `Auth: {{Authorizer: NONE}}`, no scopes"
                    ));
                }
                if r.function != ingest {
                    bad.push(format!("{what}: public routes are served by ingest"));
                }
            }
            Some(scope) => {
                if authorizer == Some("NONE") {
                    bad.push(format!(
                        "{what}: Authorizer NONE on a route that needs {}",
                        scope.scope()
                    ));
                }
                let want = gateway_scopes(scope);
                if scopes != want {
                    bad.push(format!(
                        "{what}: AuthorizationScopes {scopes:?}, ROUTES says {want:?}"
                    ));
                }
                let settings = &r.props["RouteSettings"];
                if is_operator_scope(scope) {
                    if r.function != OPERATOR_FUNCTION {
                        bad.push(format!("{what}: operator routes go to {OPERATOR_FUNCTION}"));
                    }
                    if settings["ThrottlingRateLimit"] != reference("OperatorThrottleRateLimit")
                        || settings["ThrottlingBurstLimit"]
                            != reference("OperatorThrottleBurstLimit")
                    {
                        bad.push(format!(
                            "{what}: RouteSettings must throttle with OperatorThrottleRateLimit/BurstLimit"
                        ));
                    }
                } else if r.function != ingest {
                    bad.push(format!("{what}: client routes are served by {ingest}"));
                }
            }
        }
    }
    for e in ROUTES {
        let key = format!("{} {}", e.method, e.path);
        if !seen.contains(&key) {
            bad.push(format!(
                "no template route for {key} (event_adapters::http::scopes::ROUTES)"
            ));
        }
    }
    for key in CONSOLE_ROUTES {
        if !seen.contains(*key) {
            bad.push(format!(
                "no template route for the console's {key} (event_adapters::http::console::GATEWAY_ROUTES)"
            ));
        }
    }
    if !seen.contains("$default") {
        bad.push("no $default route (unknown paths get the router's JSON 404)".into());
    }
    // Operator routes are throttled below the stage.
    let default_of = |name: &str| num(&t.root["Parameters"][name]["Default"]).unwrap_or(u64::MAX);
    for (op, stage) in [
        ("OperatorThrottleRateLimit", "ApiThrottleRateLimit"),
        ("OperatorThrottleBurstLimit", "ApiThrottleBurstLimit"),
    ] {
        if default_of(op) >= default_of(stage) {
            bad.push(format!("parameter {op} must default below {stage}"));
        }
    }
    bad
}

#[test]
fn api_routes_and_scopes_are_the_routers_table() {
    let t = Template::load();
    assert!(ROUTES.len() >= 10, "ROUTES has {} entries", ROUTES.len());
    let bad = route_violations(&t);
    assert!(
        bad.is_empty(),
        "the HTTP API differs from event_adapters::http::scopes::ROUTES:\n  {}",
        bad.join("\n  ")
    );
    // Without the JWT authorizer: exactly the public routes of ROUTES and the console's
    // pages. Every other route (every data route) has the authorizer and a scope.
    let open: BTreeSet<String> = api_routes(&t)
        .into_iter()
        .filter(|r| r.props["Auth"]["Authorizer"] == "NONE")
        .map(|r| r.key)
        .collect();
    let want_open: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| r.scope.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .chain(CONSOLE_ROUTES.iter().map(|k| k.to_string()))
        .collect();
    assert_eq!(open, want_open, "the routes without the JWT authorizer");
    for r in api_routes(&t) {
        if r.key == "$default" || open.contains(&r.key) {
            continue;
        }
        assert!(
            !as_list(&r.props["Auth"]["AuthorizationScopes"]).is_empty(),
            "{}: a data route needs the authorizer and its scope",
            r.key
        );
    }
    let (ingest, f) = t.function_for("ingest").expect("ingest function");
    for (id, f) in [
        (ingest, f),
        (OPERATOR_FUNCTION, t.resource(OPERATOR_FUNCTION)),
    ] {
        assert_eq!(
            t.env(f).get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"),
            Some(&json!("true")),
            "{id}: the named stage must be stripped from the path"
        );
    }
    // The internet-facing ingest role sends to no queue and has no queue URL.
    let ingest_role = t.role_of(ingest);
    assert!(
        role_statements(&t, &ingest_role)
            .iter()
            .all(|s| actions(s).iter().all(|a| !a.starts_with("sqs:"))),
        "{ingest_role}: no SQS permission (replay and dead letters are the operator's)"
    );
    assert!(
        t.env(f).keys().all(|k| !k.contains("QUEUE_URL")),
        "{ingest}: no queue URLs"
    );
}

#[test]
fn route_check_rejects_missing_scopes_and_open_routes() {
    let base = template_text();
    let cases = [
        // a wrong scope on an operator route
        (
            "AuthorizationScopes: [ops:replay]",
            "AuthorizationScopes: [events:read]",
        ),
        // a per-domain write scope missing
        ("                - events:write:loan\n", ""),
        // a read route opened to anyone
        (
            "            Path: /correlations/{correlationId}\n            Auth:\n              AuthorizationScopes: [events:read]",
            "            Path: /correlations/{correlationId}\n            Auth:\n              Authorizer: NONE",
        ),
        // the public route behind the authorizer
        ("              Authorizer: NONE\n", "              AuthorizationScopes: [events:read]\n"),
        // the console's pages behind the authorizer (a browser sends no token for a page)
        (
            "            Path: /console\n            Auth:\n              Authorizer: NONE",
            "            Path: /console\n            Auth:\n              AuthorizationScopes: [events:read]",
        ),
        // an open greedy route beyond the console (it would reach every data route)
        ("Path: /console/{proxy+}", "Path: /{proxy+}"),
        // the console's greedy route missing
        ("Path: /console/{proxy+}", "Path: /console/pages"),
        // a route the router does not have (and one of ROUTES missing)
        ("Path: /handlers/{handler}", "Path: /handler/{handler}"),
        // an operator route without its low throttle
        (
            "ThrottlingRateLimit: !Ref OperatorThrottleRateLimit",
            "ThrottlingRateLimit: !Ref ApiThrottleRateLimit",
        ),
        // an operator route on ingest (the operator function's first route moved)
        (
            "            ApiId: !Ref HttpApi\n            Method: POST\n            Path: /replay",
            "            ApiId: !Ref HttpApi\n            Method: POST\n            Path: /events",
        ),
    ];
    for (from, to) in cases {
        assert!(
            !mutated_violations(&base, from, to, route_violations).is_empty(),
            "the route check missed {to:?} (from {from:?})"
        );
    }
}

// ----------------------------------------------------------------------------------------
// (e) queue policies: who may send where
// ----------------------------------------------------------------------------------------

/// The statements of every queue policy that names `queue_id`.
fn queue_policy_statements<'a>(t: &'a Template, queue_id: &str) -> Vec<&'a Value> {
    let queue = reference(queue_id);
    t.of_type("AWS::SQS::QueuePolicy")
        .into_iter()
        .filter(|(_, p)| as_list(&p["Properties"]["Queues"]).contains(&&queue))
        .flat_map(|(_, p)| as_list(&p["Properties"]["PolicyDocument"]["Statement"]))
        .collect()
}

/// Roles whose IAM policies allow `sqs:SendMessage` on `queue_id`.
fn iam_senders(t: &Template, queue_id: &str) -> BTreeSet<String> {
    let arn = get_att(queue_id, "Arn");
    t.of_type("AWS::IAM::Role")
        .into_iter()
        .filter(|(id, _)| {
            role_statements(t, id).iter().any(|s| {
                s["Effect"] == "Allow"
                    && actions(s).iter().any(|a| a == "sqs:sendmessage")
                    && as_list(&s["Resource"]).contains(&&arn)
            })
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

/// The roles that must be the only senders of each queue of the stack.
fn expected_senders(t: &Template) -> BTreeMap<String, BTreeSet<String>> {
    let by_name: BTreeMap<String, &str> = t
        .of_type("AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(id, q)| {
            sub_or_str(&q["Properties"]["QueueName"]).map(|n| (n.to_string(), id))
        })
        .collect();
    let mut want = BTreeMap::new();
    let Some((dispatch, dispatch_fn)) = t.function_for("dispatch") else {
        return want;
    };
    let dispatch_role = t.role_of(dispatch);
    for pair in topology::queues(PREFIX) {
        let (Some(q), Some(d)) = (by_name.get(&pair.queue), by_name.get(&pair.dlq)) else {
            continue;
        };
        // Routing (dispatch), replay and redrive (operator).
        want.insert(
            q.to_string(),
            BTreeSet::from([dispatch_role.clone(), t.role_of(OPERATOR_FUNCTION)]),
        );
        // Permanent failures, dead-lettered by the domain's handler itself.
        let handler = t
            .function_for(&format!("{}-handler", pair.domain))
            .map(|(id, _)| t.role_of(id));
        want.insert(d.to_string(), handler.into_iter().collect());
    }
    // The delivery queue: matches (dispatch), backfill and replay (operator), backfilled
    // history (the delivery function); its dead letters: the delivery function only.
    let (delivery, delivery_dlq) = topology::delivery_queues(PREFIX);
    if let (Some(q), Some(d), Some((delivery_fn, _))) = (
        by_name.get(&delivery),
        by_name.get(&delivery_dlq),
        t.function_for(DELIVERY_HANDLER),
    ) {
        let delivery_role = t.role_of(delivery_fn);
        want.insert(
            q.to_string(),
            BTreeSet::from([
                dispatch_role.clone(),
                t.role_of(OPERATOR_FUNCTION),
                delivery_role.clone(),
            ]),
        );
        want.insert(d.to_string(), BTreeSet::from([delivery_role]));
    }
    // The rebuild steps: a job's first step (operator), each next one (the step
    // function); its dead letters: the step function only.
    let (rebuild, rebuild_dlq) = topology::rebuild_queues(PREFIX);
    if let (Some(q), Some(d), Some((rebuild_fn, _))) = (
        by_name.get(&rebuild),
        by_name.get(&rebuild_dlq),
        t.function_for(PROJECTION_REBUILD),
    ) {
        let rebuild_role = t.role_of(rebuild_fn);
        want.insert(
            q.to_string(),
            BTreeSet::from([t.role_of(OPERATOR_FUNCTION), rebuild_role.clone()]),
        );
        want.insert(d.to_string(), BTreeSet::from([rebuild_role]));
    }
    // Dispatch's on-failure destination, sent to with dispatch's role.
    let events = dispatch_fn["Properties"]["Events"].as_object();
    for e in events.into_iter().flat_map(|e| e.values()) {
        if let Some(q) = e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
            ["Fn::GetAtt"][0]
            .as_str()
        {
            want.insert(q.to_string(), BTreeSet::from([dispatch_role.clone()]));
        }
    }
    // A schedule's DLQ, sent to with the schedule's role.
    for (_, f) in t.functions() {
        for e in f["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
        {
            let p = &e["Properties"];
            if let (Some(q), Some(role)) = (
                p["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].as_str(),
                p["RoleArn"]["Fn::GetAtt"][0].as_str(),
            ) {
                want.insert(q.to_string(), BTreeSet::from([role.to_string()]));
            }
        }
    }
    want
}

fn queue_policy_violations(t: &Template) -> Vec<String> {
    let mut bad = Vec::new();
    let want = expected_senders(t);
    for (qid, _) in t.of_type("AWS::SQS::Queue") {
        let Some(senders) = want.get(qid) else {
            bad.push(format!(
                "{qid}: this test does not know who may send to it; teach expected_senders"
            ));
            continue;
        };
        let arn = get_att(qid, "Arn");
        let st = queue_policy_statements(t, qid);
        let tls = st.iter().any(|s| {
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && s["Action"] == "sqs:*"
                && s["Resource"] == arn
                && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        });
        if !tls {
            bad.push(format!(
                "{qid}: no queue policy denying sqs:* when aws:SecureTransport is false"
            ));
        }
        let limits: Vec<BTreeSet<String>> = st
            .iter()
            .filter(|s| {
                s["Effect"] == "Deny"
                    && s["Principal"] == "*"
                    && actions(s).iter().any(|a| a == "sqs:sendmessage")
                    && s["Resource"] == arn
            })
            .map(|s| {
                as_list(&s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
                    .into_iter()
                    .map(
                        |r| match (r["Fn::GetAtt"][0].as_str(), r["Fn::GetAtt"][1].as_str()) {
                            (Some(id), Some("Arn")) => id.to_string(),
                            _ => format!("<not a role of the stack: {r}>"),
                        },
                    )
                    .collect()
            })
            .collect();
        match limits.as_slice() {
            [allowed] if allowed == senders => {}
            [allowed] => bad.push(format!(
                "{qid}: the queue policy lets {allowed:?} send; only {senders:?} should"
            )),
            _ => bad.push(format!(
                "{qid}: want one Deny of sqs:SendMessage unless aws:PrincipalArn is one of {senders:?} (ArnNotEquals), found {}",
                limits.len()
            )),
        }
        if st.iter().any(|s| s["Effect"] != "Deny") {
            bad.push(format!("{qid}: its queue policy only denies (IAM grants)"));
        }
        let iam = iam_senders(t, qid);
        if &iam != senders {
            bad.push(format!(
                "{qid}: IAM lets {iam:?} send; the queue policy allows {senders:?}"
            ));
        }
    }
    // Each DLQ takes dead letters from its own queue only.
    let pairs = topology::queues(PREFIX)
        .into_iter()
        .map(|p| (p.queue, p.dlq))
        .chain([
            topology::delivery_queues(PREFIX),
            topology::rebuild_queues(PREFIX),
        ]);
    for (queue, dlq_name) in pairs {
        let Some((dlq, d)) = t
            .of_type("AWS::SQS::Queue")
            .into_iter()
            .find(|(_, q)| sub_or_str(&q["Properties"]["QueueName"]) == Some(dlq_name.as_str()))
        else {
            continue;
        };
        let policy = &d["Properties"]["RedriveAllowPolicy"];
        let source = json!({
            "Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{}", queue)
        });
        if policy["redrivePermission"] != "byQueue" || policy["sourceQueueArns"] != json!([source])
        {
            bad.push(format!(
                "{dlq}: RedriveAllowPolicy must be byQueue with sourceQueueArns [{source}], got {policy}"
            ));
        }
    }
    bad
}

#[test]
fn queue_policies_let_only_the_right_roles_send() {
    let t = Template::load();
    let want = expected_senders(&t);
    assert!(
        want.len() >= topology::queues(PREFIX).len() * 2 + 4,
        "expected senders for only {} queues",
        want.len()
    );
    let bad = queue_policy_violations(&t);
    assert!(bad.is_empty(), "queue policies:\n  {}", bad.join("\n  "));
}

#[test]
fn queue_policy_check_rejects_open_queues() {
    let base = template_text();
    let cases = [
        // ingest may send to a domain queue
        (
            "aws:PrincipalArn: [!GetAtt DispatchRole.Arn, !GetAtt OperatorRole.Arn]",
            "aws:PrincipalArn: [!GetAtt DispatchRole.Arn, !GetAtt OperatorRole.Arn, !GetAtt IngestRole.Arn]",
        ),
        // plain HTTP allowed
        (
            "aws:SecureTransport: \"false\"",
            "aws:SecureTransport: \"true\"",
        ),
        // IAM lets dispatch send to a DLQ the policy does not name it for
        (
            "                Resource: !GetAtt DispatchFailureQueue.Arn\n",
            "                Resource: !GetAtt PaymentDlq.Arn\n",
        ),
        // a DLQ open to any source queue
        ("redrivePermission: byQueue", "redrivePermission: allowAll"),
        // a queue without its policy
        ("Queues: [!Ref DrawQueue]", "Queues: [!Ref DrawDlq]"),
    ];
    for (from, to) in cases {
        assert!(
            !mutated_violations(&base, from, to, queue_policy_violations).is_empty(),
            "the queue policy check missed {to:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------
// (f) table writes: each role writes only the key families it owns
// ----------------------------------------------------------------------------------------

/// The family of a partition key: its prefix up to and including the first `#`.
fn family(pk: &str) -> String {
    let end = pk.find('#').map_or(pk.len(), |i| i + 1);
    pk[..end].to_string()
}

/// Key families, from the code that builds the keys (the table layout, `store/layout.rs`):
/// (events, eventId guards, processing records, handler switches, daily statistics).
fn families() -> (String, String, String, String, String) {
    let (a, e, p, h, s, _) = families_with_read_models();
    (a, e, p, h, s)
}

/// The family of read-model rebuild jobs, from the code that builds their keys.
fn rebuild_job_family() -> String {
    family(&layout::rebuild_job_pk("t", "j"))
}

/// [`families`] and the read models' family (loan summaries).
fn families_with_read_models() -> (String, String, String, String, String, String) {
    let stream = lending_events::envelope::StreamId {
        tenant_id: "t",
        aggregate_type: "Loan",
        aggregate_id: "L-1",
    };
    (
        family(&layout::stream_pk(&stream)),
        family(&layout::guard_pk("t", &uuid::Uuid::nil())),
        family(&layout::record_pk("t", "e", "h")),
        family(&layout::switch_pk("h")),
        family(&layout::stats_pk("h", "2026-01-01")),
        family(&layout::loan_summary_pk("t", "L-1")),
    )
}

/// Key families of subscriptions, from the code that builds them
/// (`event_adapters::store::layout`).
struct SubscriptionFamilies {
    subscriptions: String,
    attempts: String,
    deliveries: String,
    circuits: String,
}

fn subscription_families() -> SubscriptionFamilies {
    use event_adapters::store::layout as keys;
    let id = uuid::Uuid::nil();
    SubscriptionFamilies {
        subscriptions: family(&keys::subscriptions_pk("t")),
        attempts: family(&keys::attempts_pk("t", &id)),
        deliveries: family(&keys::delivery_pk("t", &id)),
        circuits: family(&keys::circuit_pk("t", "https://x")),
    }
}

/// What each function's role may write: action -> key families.
fn expected_writes(t: &Template) -> BTreeMap<String, BTreeMap<&'static str, BTreeSet<String>>> {
    let (a, e, p, h, s, r) = families_with_read_models();
    let rb = rebuild_job_family();
    let set = |fs: &[&String]| fs.iter().map(|f| f.to_string()).collect::<BTreeSet<_>>();
    let sub = subscription_families();
    let mut want = BTreeMap::new();
    for (id, f) in t.functions() {
        let bin = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or("");
        let mut w = BTreeMap::new();
        if id == OPERATOR_FUNCTION {
            // Ops.* and Subscription.* events, handler switches, subscriptions, read-model
            // rebuilds (their job records, and summaries when run inline).
            w.insert(
                "dynamodb:putitem",
                set(&[&a, &e, &h, &sub.subscriptions, &r, &rb]),
            );
        } else if bin == PROJECTION_REBUILD {
            // Summaries, the job record, and the job's Ops.ProjectionRebuilt at the end.
            w.insert("dynamodb:putitem", set(&[&a, &e, &r, &rb]));
        } else if bin == PROJECTION_HANDLER {
            // Read models only: it appends no events.
            w.insert("dynamodb:putitem", set(&[&r]));
            w.insert("dynamodb:updateitem", set(&[&p, &s]));
        } else if bin == DELIVERY_HANDLER {
            // Circuit events, the attempt log, circuits; delivery records and backfill
            // progress.
            w.insert(
                "dynamodb:putitem",
                set(&[&a, &e, &sub.attempts, &sub.circuits]),
            );
            w.insert(
                "dynamodb:updateitem",
                set(&[&sub.deliveries, &sub.subscriptions]),
            );
        } else if bin.ends_with("-handler") {
            w.insert("dynamodb:putitem", set(&[&a, &e]));
            w.insert("dynamodb:updateitem", set(&[&p, &s]));
        } else if bin == "ingest" || bin == "late-payments" {
            w.insert("dynamodb:putitem", set(&[&a, &e]));
        } else if bin != "dispatch" {
            continue; // reported by table_write_violations
        }
        want.insert(id.to_string(), w);
    }
    want
}

const ITEM_WRITES: &[&str] = &["dynamodb:putitem", "dynamodb:updateitem"];
const NEVER_ALLOWED: &[&str] = &[
    "dynamodb:deleteitem",
    "dynamodb:batchwriteitem",
    "dynamodb:partiqlinsert",
    "dynamodb:partiqlupdate",
    "dynamodb:partiqldelete",
];

fn table_write_violations(t: &Template) -> Vec<String> {
    let mut bad = Vec::new();
    let (a, e, ..) = families();
    let want = expected_writes(t);
    for (id, _) in t.functions() {
        let Some(expected) = want.get(id) else {
            bad.push(format!(
                "{id}: this test does not know what it writes; teach expected_writes"
            ));
            continue;
        };
        let role = t.role_of(id);
        let mut got: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for s in role_statements(t, &role)
            .into_iter()
            .filter(|s| s["Effect"] == "Allow")
        {
            for action in actions(s) {
                if NEVER_ALLOWED.contains(&action.as_str()) {
                    bad.push(format!(
                        "{role}: {action} (no role deletes or batch-writes items)"
                    ));
                }
                let Some(write) = ITEM_WRITES.iter().find(|w| **w == action) else {
                    continue;
                };
                let keys = &s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                if keys.is_null() {
                    bad.push(format!(
                        "{role}: {action} without a ForAllValues:StringLike dynamodb:LeadingKeys condition"
                    ));
                }
                for k in as_list(keys) {
                    let k = k.as_str().unwrap_or("");
                    match k.strip_suffix('*') {
                        Some(f)
                            if f.ends_with('#')
                                && f.len() >= 2
                                && f[..f.len() - 1].bytes().all(|b| b.is_ascii_uppercase()) =>
                        {
                            got.entry(write).or_default().insert(f.to_string());
                        }
                        _ => bad.push(format!(
                            "{role}: {action} on key pattern {k:?} (want a family, e.g. \"A#*\")"
                        )),
                    }
                }
            }
        }
        if &got != expected {
            bad.push(format!(
                "{role} ({id}) may write {got:?}; it writes {expected:?}"
            ));
        }
        if let Some(updates) = got.get("dynamodb:updateitem") {
            if updates.contains(&a) || updates.contains(&e) {
                bad.push(format!("{role}: may update event items or eventId guards"));
            }
        }
    }
    bad
}

#[test]
fn each_role_writes_only_its_key_families() {
    let t = Template::load();
    let (a, e, p, h, s) = families();
    assert_eq!(
        [a, e, p, h, s],
        ["A#", "E#", "P#", "H#", "S#"].map(String::from)
    );
    let bad = table_write_violations(&t);
    assert!(bad.is_empty(), "table writes:\n  {}", bad.join("\n  "));
}

#[test]
fn table_write_check_rejects_broader_writes() {
    let base = template_text();
    let cases = [
        // the operator may write processing records
        (
            "dynamodb:LeadingKeys: [\"A#*\", \"E#*\", \"H#*\", \"SUB#*\", \"R#*\", \"RB#*\"]",
            "dynamodb:LeadingKeys: [\"A#*\", \"E#*\", \"H#*\", \"SUB#*\", \"R#*\", \"RB#*\", \"P#*\"]",
        ),
        // the rebuild steps may write handler switches
        (
            "dynamodb:LeadingKeys: [\"A#*\", \"E#*\", \"R#*\", \"RB#*\"]",
            "dynamodb:LeadingKeys: [\"A#*\", \"E#*\", \"R#*\", \"RB#*\", \"H#*\"]",
        ),
        // the projection may append events
        (
            "dynamodb:LeadingKeys: [\"R#*\"]",
            "dynamodb:LeadingKeys: [\"R#*\", \"A#*\"]",
        ),
        // a handler may update event items
        (
            "dynamodb:LeadingKeys: [\"P#*\", \"S#*\"]",
            "dynamodb:LeadingKeys: [\"P#*\", \"S#*\", \"A#*\"]",
        ),
        // ingest's appends unscoped
        (
            "                Condition:\n                  ForAllValues:StringLike:\n                    dynamodb:LeadingKeys: [\"A#*\", \"E#*\"]\n",
            "",
        ),
        // any key
        ("dynamodb:LeadingKeys: [\"A#*\", \"E#*\"]", "dynamodb:LeadingKeys: [\"*\"]"),
        // deletes
        (
            "                Action: dynamodb:UpdateItem\n",
            "                Action: [dynamodb:UpdateItem, dynamodb:DeleteItem]\n",
        ),
    ];
    for (from, to) in cases {
        assert!(
            !mutated_violations(&base, from, to, table_write_violations).is_empty(),
            "the table write check missed {to:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------
// (g) one customer-managed key; what is kept on delete and replace
// ----------------------------------------------------------------------------------------

fn encryption_violations(t: &Template) -> Vec<String> {
    let mut bad = Vec::new();
    let keys = t.of_type("AWS::KMS::Key");
    let [(key_id, key)] = keys.as_slice() else {
        return vec![format!("{} KMS keys, want one", keys.len())];
    };
    let key_arn = get_att(key_id, "Arn");
    let retained =
        |r: &Value| r["DeletionPolicy"] == "Retain" && r["UpdateReplacePolicy"] == "Retain";
    if key["Properties"]["EnableKeyRotation"] != true {
        bad.push(format!("{key_id}: EnableKeyRotation"));
    }
    if !retained(key) {
        bad.push(format!(
            "{key_id}: Retain (the retained table and DLQs need it)"
        ));
    }
    let policy: Vec<&Value> = as_list(&key["Properties"]["KeyPolicy"]["Statement"]);
    let service = |s: &Value| s["Principal"]["Service"].clone();
    let logs = policy.iter().any(|s| {
        sub_or_str(&service(s)) == Some("logs.${AWS::Region}.amazonaws.com")
            && !s["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].is_null()
    });
    if !logs {
        bad.push(format!("{key_id}: the key policy must let CloudWatch Logs use it, limited by the kms:EncryptionContext:aws:logs:arn of this stack's log groups"));
    }
    let alarms = policy.iter().any(|s| {
        service(s) == "cloudwatch.amazonaws.com"
            && actions(s).contains(&"kms:decrypt".to_string())
            && actions(s).contains(&"kms:generatedatakey".to_string())
    });
    if !alarms {
        bad.push(format!("{key_id}: CloudWatch alarms need Decrypt/GenerateDataKey to publish to the encrypted topic"));
    }

    let sse = &t.resource("EventsTable")["Properties"]["SSESpecification"];
    if sse["SSEEnabled"] != true || sse["SSEType"] != "KMS" || sse["KMSMasterKeyId"] != key_arn {
        bad.push(format!("EventsTable: SSE with {key_id}, got {sse}"));
    }
    for (id, q) in t.of_type("AWS::SQS::Queue") {
        if q["Properties"]["KmsMasterKeyId"] != key_arn
            || q["Properties"]["SqsManagedSseEnabled"] == true
        {
            bad.push(format!("{id}: KmsMasterKeyId must be {key_id}"));
        }
    }
    for (id, g) in t.of_type("AWS::Logs::LogGroup") {
        if g["Properties"]["KmsKeyId"] != key_arn {
            bad.push(format!("{id}: KmsKeyId must be {key_id}"));
        }
    }
    for (id, topic) in t.of_type("AWS::SNS::Topic") {
        if topic["Properties"]["KmsMasterKeyId"] != key_arn {
            bad.push(format!("{id}: KmsMasterKeyId must be {key_id}"));
        }
    }
    // Every role touching encrypted data may use the key, and no other key.
    for (role, _) in t.of_type("AWS::IAM::Role") {
        let st = role_statements(t, role);
        let data = st.iter().any(|s| {
            actions(s)
                .iter()
                .any(|a| a.starts_with("sqs:") || a.starts_with("dynamodb:"))
        });
        let uses_key = st.iter().any(|s| {
            s["Effect"] == "Allow"
                && actions(s).contains(&"kms:decrypt".to_string())
                && actions(s).contains(&"kms:generatedatakey".to_string())
                && as_list(&s["Resource"]) == vec![&key_arn]
        });
        if data && !uses_key {
            bad.push(format!("{role}: Decrypt/GenerateDataKey on {key_id} (its table and queues are encrypted with it)"));
        }
        for s in st
            .iter()
            .filter(|s| actions(s).iter().any(|a| a.starts_with("kms:")))
        {
            if as_list(&s["Resource"]) != vec![&key_arn] {
                bad.push(format!(
                    "{role}: kms actions on {} (only {key_id})",
                    s["Resource"]
                ));
            }
        }
    }

    // Kept on delete and replace: DLQs, failure queues, access logs.
    let mut keep: BTreeSet<String> = expected_senders(t)
        .into_keys()
        .filter(|q| {
            let p = &t.resource(q)["Properties"];
            p["RedrivePolicy"].is_null() // not a source queue: a DLQ or failure queue
        })
        .collect();
    if let Some(api) = t.of_type("AWS::Serverless::HttpApi").first() {
        if let Some(g) =
            api.1["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0].as_str()
        {
            keep.insert(g.to_string());
        } else {
            bad.push("the HTTP API has no access log group".into());
        }
    }
    for id in &keep {
        if !retained(t.resource(id)) {
            bad.push(format!(
                "{id}: DeletionPolicy and UpdateReplacePolicy must be Retain"
            ));
        }
    }
    bad
}

#[test]
fn one_rotated_key_encrypts_everything_and_evidence_is_kept() {
    let t = Template::load();
    let bad = encryption_violations(&t);
    assert!(
        bad.is_empty(),
        "encryption and retention:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn encryption_check_rejects_unencrypted_or_deletable_resources() {
    let base = template_text();
    let cases = [
        ("EnableKeyRotation: true", "EnableKeyRotation: false"),
        (
            "      KmsMasterKeyId: !GetAtt EncryptionKey.Arn\n",
            "      KmsMasterKeyId: alias/aws/sns\n",
        ),
        (
            "        KMSMasterKeyId: !GetAtt EncryptionKey.Arn\n",
            "        KMSMasterKeyId: alias/aws/dynamodb\n",
        ),
        (
            "      RetentionInDays: !Ref LogRetentionDays\n      KmsKeyId: !GetAtt EncryptionKey.Arn\n",
            "      RetentionInDays: !Ref LogRetentionDays\n",
        ),
        (
            "  PaymentDlq:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Retain\n",
            "  PaymentDlq:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n",
        ),
        (
            "  ApiAccessLogGroup:\n    Type: AWS::Logs::LogGroup\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n",
            "  ApiAccessLogGroup:\n    Type: AWS::Logs::LogGroup\n",
        ),
        (
            "kms:EncryptionContext:aws:logs:arn:",
            "aws:SourceArn:",
        ),
        (
            "                Action: [kms:Decrypt, kms:GenerateDataKey]\n                Resource: !GetAtt EncryptionKey.Arn\n",
            "                Action: [kms:Decrypt]\n                Resource: !GetAtt EncryptionKey.Arn\n",
        ),
    ];
    for (from, to) in cases {
        assert!(
            !mutated_violations(&base, from, to, encryption_violations).is_empty(),
            "the encryption check missed {to:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------
// (h) what a production deploy needs: alarm endpoint, alarms, safe parameters
// ----------------------------------------------------------------------------------------

/// Alarms (with an action) whose metric math reads `metric` of the events table.
fn table_alarms(t: &Template, metric: &str) -> Vec<String> {
    t.of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| {
            let p = &a["Properties"];
            p["AlarmActions"].as_array().is_some_and(|x| !x.is_empty())
                && as_list(&p["Metrics"]).iter().any(|m| {
                    let m = &m["MetricStat"]["Metric"];
                    m["Namespace"] == "AWS/DynamoDB"
                        && m["MetricName"] == metric
                        && as_list(&m["Dimensions"]).iter().any(|d| {
                            d["Name"] == "TableName" && d["Value"] == reference("EventsTable")
                        })
                })
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

fn production_violations(t: &Template) -> Vec<String> {
    let mut bad = Vec::new();
    let params = &t.root["Parameters"];

    // Rules: no production stack without an alarm endpoint.
    let email_required = json!({"Fn::Not": [{"Fn::Equals": [reference("AlarmEmail"), ""]}]});
    let rule = t.root["Rules"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .any(|r| {
            let cond = r["RuleCondition"].to_string();
            cond.contains("StageName")
                && cond.contains("\"prod\"")
                && as_list(&r["Assertions"])
                    .iter()
                    .any(|a| a["Assert"] == email_required)
        });
    if !rule {
        bad.push("Rules: AlarmEmail must be required when StageName is prod".into());
    }

    // LogLevel: a closed list; debug only for the project's crates, never trace.
    let levels = as_list(&params["LogLevel"]["AllowedValues"]);
    if levels.is_empty() || !levels.contains(&&params["LogLevel"]["Default"]) {
        bad.push("LogLevel: AllowedValues, including its Default".into());
    }
    for v in levels {
        for directive in v.as_str().unwrap_or("?").split(',') {
            let ok = match directive.split_once('=') {
                None => ["off", "error", "warn", "info"].contains(&directive),
                Some((target, level)) => {
                    ["event_adapters", "lending_events"].contains(&target)
                        && ["error", "warn", "info", "debug"].contains(&level)
                }
            };
            if !ok {
                bad.push(format!(
                    "LogLevel allows {directive:?} (could log request bodies)"
                ));
            }
        }
    }

    // The cursor key: secret, long, given to every function behind the HTTP API.
    let key = &params["CursorSigningKey"];
    if key["NoEcho"] != true
        || num(&key["MinLength"]).unwrap_or(0) < 32
        || !key["Default"].is_null()
    {
        bad.push("CursorSigningKey: NoEcho, MinLength >= 32, no Default".into());
    }
    let serving: BTreeSet<String> = api_routes(t).into_iter().map(|r| r.function).collect();
    for (id, f) in t.functions() {
        let has = t.env(f).get("CURSOR_SIGNING_KEY") == Some(&reference("CursorSigningKey"));
        if has != serving.contains(id) {
            bad.push(format!(
                "{id}: CURSOR_SIGNING_KEY (!Ref CursorSigningKey) is for the functions serving the HTTP API"
            ));
        }
    }

    // Handler concurrency parameters.
    if num(&params["HandlerMaximumConcurrency"]["MinValue"]).unwrap_or(0) < 2 {
        bad.push("HandlerMaximumConcurrency: MinValue 2 (the SQS mapping's minimum)".into());
    }
    if params["HandlerReservedConcurrency"].is_null() {
        bad.push("parameter HandlerReservedConcurrency".into());
    }

    // Alarms.
    for pair in topology::queues(PREFIX) {
        let q = t
            .of_type("AWS::SQS::Queue")
            .into_iter()
            .find(|(_, q)| sub_or_str(&q["Properties"]["QueueName"]) == Some(pair.queue.as_str()));
        if let Some((qid, _)) = q {
            if t.alarms_on(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "QueueName",
                &get_att(qid, "QueueName"),
            )
            .is_empty()
            {
                bad.push(format!("{qid}: no ApproximateAgeOfOldestMessage alarm"));
            }
        }
    }
    for metric in ["ReadThrottleEvents", "WriteThrottleEvents", "SystemErrors"] {
        if table_alarms(t, metric).is_empty() {
            bad.push(format!("EventsTable: no alarm on {metric}"));
        }
    }
    if let Some((dispatch, f)) = t.function_for("dispatch") {
        if t.alarms_on(
            "AWS/Lambda",
            "DestinationDeliveryFailures",
            "FunctionName",
            &reference(dispatch),
        )
        .is_empty()
        {
            bad.push(format!("{dispatch}: no DestinationDeliveryFailures alarm"));
        }
        for e in f["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
        {
            if let Some(q) = e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
                ["Fn::GetAtt"][0]
                .as_str()
            {
                if t.alarms_on(
                    "AWS/SQS",
                    "NumberOfMessagesSent",
                    "QueueName",
                    &get_att(q, "QueueName"),
                )
                .is_empty()
                {
                    bad.push(format!(
                        "{q}: no NumberOfMessagesSent alarm (each failure delivery)"
                    ));
                }
            }
        }
    }
    if let Some((job, _)) = t.function_for("late-payments") {
        let ran = t
            .alarms_on("AWS/Lambda", "Invocations", "FunctionName", &reference(job))
            .into_iter()
            .any(|id| {
                let p = &t.resource(id)["Properties"];
                let window =
                    num(&p["Period"]).unwrap_or(0) * num(&p["EvaluationPeriods"]).unwrap_or(0);
                p["ComparisonOperator"] == "LessThanThreshold"
                    && num(&p["Threshold"]) == Some(1)
                    && p["TreatMissingData"] == "breaching"
                    && (3600..=86_400).contains(&window)
                    && p["DatapointsToAlarm"] == p["EvaluationPeriods"]
            });
        if !ran {
            bad.push(format!(
                "{job}: no alarm for the daily job not running (Invocations < 1 over <= a day, missing data breaching)"
            ));
        }
    }
    bad
}

#[test]
fn production_deploys_alarm_someone_and_log_safely() {
    let t = Template::load();
    let bad = production_violations(&t);
    assert!(
        bad.is_empty(),
        "production settings:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn production_check_rejects_missing_alarms_and_loose_parameters() {
    let base = template_text();
    let cases = [
        (
            "RuleCondition: !Contains [[prod, production], !Ref StageName]",
            "RuleCondition: !Contains [[staging], !Ref StageName]",
        ),
        (
            "AllowedValues: [error, warn, info, \"warn,event_adapters=debug\"",
            "AllowedValues: [error, warn, info, debug, \"warn,event_adapters=debug\"",
        ),
        (
            "\"info,event_adapters=debug\"]",
            "\"info,event_adapters=debug\", \"info,aws_smithy_runtime=trace\"]",
        ),
        ("    MinLength: 32\n", "    MinLength: 8\n"),
        ("          CURSOR_SIGNING_KEY: !Ref CursorSigningKey\n", ""),
        (
            "MetricName: ApproximateAgeOfOldestMessage",
            "MetricName: ApproximateNumberOfMessagesNotVisible",
        ),
        (
            "MetricName: DestinationDeliveryFailures",
            "MetricName: DeadLetterErrors",
        ),
        (
            "TreatMissingData: breaching",
            "TreatMissingData: notBreaching",
        ),
        (
            "MetricName: NumberOfMessagesSent",
            "MetricName: NumberOfMessagesDeleted",
        ),
    ];
    for (from, to) in cases {
        assert!(
            !mutated_violations(&base, from, to, production_violations).is_empty(),
            "the production check missed {to:?}"
        );
    }
    // No alarm on the table's system errors at all.
    let no_system_errors = base.replace("MetricName: SystemErrors", "MetricName: UserErrors");
    assert!(
        !production_violations(&Template::parse(&no_system_errors)).is_empty(),
        "the production check missed the table's SystemErrors alarm"
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

// ----------------------------------------------------------------------------------------
// (i) subscriptions: the delivery queue, its dead letters and the delivery function
// ----------------------------------------------------------------------------------------

#[test]
fn subscriptions_have_their_delivery_queue_function_and_alarms() {
    let t = Template::load();
    let (queue, dlq) = topology::delivery_queues(PREFIX);
    let by_name: BTreeMap<String, &str> = t
        .of_type("AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(id, q)| {
            sub_or_str(&q["Properties"]["QueueName"]).map(|n| (n.to_string(), id))
        })
        .collect();
    let queue_id = *by_name.get(&queue).expect("the delivery queue");
    let dlq_id = *by_name.get(&dlq).expect("the delivery DLQ");
    let q = &t.resource(queue_id)["Properties"];
    assert_eq!(
        num(&q["RedrivePolicy"]["maxReceiveCount"]),
        Some(u64::from(topology::DELIVERY_MAX_RECEIVE_COUNT)),
        "{queue_id}: maxReceiveCount = topology::DELIVERY_MAX_RECEIVE_COUNT (waiting deliveries use receives)"
    );
    assert_eq!(
        q["RedrivePolicy"]["deadLetterTargetArn"],
        get_att(dlq_id, "Arn")
    );
    assert_ne!(q["ContentBasedDeduplication"], json!(true));
    for (id, metric) in [
        (dlq_id, "ApproximateNumberOfMessagesVisible"),
        (queue_id, "ApproximateAgeOfOldestMessage"),
    ] {
        assert!(
            !t.alarms_on("AWS/SQS", metric, "QueueName", &get_att(id, "QueueName"))
                .is_empty(),
            "{id}: no {metric} alarm"
        );
    }

    let (fid, f) = t
        .function_for(DELIVERY_HANDLER)
        .expect("a delivery function");
    let env = t.env(f);
    assert_eq!(
        env.get("DELIVERY_QUEUE_URL"),
        Some(&reference(queue_id)),
        "{fid}"
    );
    assert_eq!(
        env.get("DELIVERY_DLQ_URL"),
        Some(&reference(dlq_id)),
        "{fid}"
    );
    assert_eq!(
        env.get("SUBSCRIPTION_KEY_ID"),
        Some(&get_att("EncryptionKey", "Arn")),
        "{fid}: secrets are decrypted with the stack's key"
    );
    let sqs: Vec<&Value> = f["Properties"]["Events"]
        .as_object()
        .map(|e| e.values().filter(|e| e["Type"] == "SQS").collect())
        .unwrap_or_default();
    assert_eq!(sqs.len(), 1, "{fid}: one SQS event source");
    assert_eq!(sqs[0]["Properties"]["Queue"], get_att(queue_id, "Arn"));
    assert_eq!(
        sqs[0]["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let timeout = num(&f["Properties"]["Timeout"]).expect("Timeout");
    assert!(timeout * 6 <= num(&q["VisibilityTimeout"]).unwrap_or(0));

    // Dispatch sends matches there; the operator backfills and replays and encrypts secrets.
    let dispatch = t.function_for("dispatch").expect("dispatch").1;
    assert_eq!(
        t.env(dispatch).get("DELIVERY_QUEUE_URL"),
        Some(&reference(queue_id))
    );
    let operator = t.resource(OPERATOR_FUNCTION);
    assert_eq!(
        t.env(operator).get("DELIVERY_QUEUE_URL"),
        Some(&reference(queue_id))
    );
    assert_eq!(
        t.env(operator).get("SUBSCRIPTION_KEY_ID"),
        Some(&get_att("EncryptionKey", "Arn"))
    );

    // The template allows no private webhook target: no function gets an allow-list.
    for (id, f) in t.functions() {
        assert!(
            !t.env(f).contains_key("WEBHOOK_EGRESS_ALLOW"),
            "{id}: WEBHOOK_EGRESS_ALLOW must not be set on AWS"
        );
    }
    // Circuits that open alarm (the delivery function's EMF metric).
    assert!(
        !t.alarms_on(
            "LendingOS/Events",
            "CircuitOpened",
            "Function",
            &json!("delivery-handler")
        )
        .is_empty(),
        "no alarm on CircuitOpened"
    );
}

// ----------------------------------------------------------------------------------------
// (read models) the projection's function, its indexes, and who may query them
// ----------------------------------------------------------------------------------------

/// The loan indexes of the topology (the read models' GSIs).
fn loan_indexes() -> Vec<&'static str> {
    GSIS.iter()
        .map(|(name, ..)| *name)
        .filter(|n| n.starts_with("loans"))
        .collect()
}

#[test]
fn read_models_have_their_function_indexes_and_least_privilege() {
    let t = Template::load();
    let (id, f) = t
        .function_for(PROJECTION_HANDLER)
        .expect("a function for the projection-handler binary");
    // Fed by its own queue, like the domain handlers.
    let env = t.env(f);
    assert_eq!(
        env.get("QUEUE_URL_PROJECTION"),
        Some(&reference("ProjectionQueue")),
        "{id}"
    );
    assert_eq!(
        env.get("DLQ_URL_PROJECTION"),
        Some(&reference("ProjectionDlq")),
        "{id}"
    );
    for alarm in [
        "ProjectionDlqAlarm",
        "ProjectionQueueAgeAlarm",
        "ProjectionHandlerErrorsAlarm",
    ] {
        assert!(t.resources().contains_key(alarm), "{alarm} missing");
    }
    // Five sparse loan indexes, and only the roles that serve GET /loans may query them.
    let indexes = loan_indexes();
    assert_eq!(indexes.len(), 5, "{indexes:?}");
    let ingest_role = t.role_of("IngestFunction");
    let text = serde_json::to_string(&role_statements(&t, &ingest_role)).unwrap();
    for i in &indexes {
        assert!(
            text.contains(&format!("/index/{i}")),
            "{ingest_role} cannot query {i}"
        );
    }
    // No role may scan a loan index: the loan list is index queries only.
    for (role_id, _) in t.of_type("AWS::IAM::Role") {
        for s in role_statements(&t, role_id) {
            let scans = actions(s).iter().any(|a| a == "dynamodb:scan");
            let on_loans = indexes
                .iter()
                .any(|i| s["Resource"].to_string().contains(&format!("/index/{i}")));
            assert!(!(scans && on_loans), "{role_id} may scan a loan index: {s}");
        }
    }
}

#[test]
fn rebuild_steps_have_their_queue_function_and_alarms() {
    let t = Template::load();
    let (queue, dlq) = topology::rebuild_queues(PREFIX);
    let by_name: BTreeMap<String, &str> = t
        .of_type("AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(id, q)| {
            sub_or_str(&q["Properties"]["QueueName"]).map(|n| (n.to_string(), id))
        })
        .collect();
    let queue_id = *by_name.get(&queue).expect("the rebuild step queue");
    let dlq_id = *by_name.get(&dlq).expect("the rebuild step DLQ");
    assert!(
        !t.alarms_on(
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &get_att(queue_id, "QueueName")
        )
        .is_empty(),
        "{queue_id}: no age alarm"
    );

    // The step function consumes its queue one step per invocation, and is told both
    // queues (each step's successor, the dead letters).
    let (fid, f) = t
        .function_for(PROJECTION_REBUILD)
        .expect("a projection-rebuild function");
    let env = t.env(f);
    assert_eq!(
        env.get("PROJECTION_REBUILD_QUEUE_URL"),
        Some(&reference(queue_id)),
        "{fid}"
    );
    assert_eq!(
        env.get("PROJECTION_REBUILD_DLQ_URL"),
        Some(&reference(dlq_id)),
        "{fid}"
    );
    let timeout = num(&f["Properties"]["Timeout"]).expect("Timeout");
    assert!(
        timeout * 6 <= u64::from(VISIBILITY_TIMEOUT_SECS),
        "{fid}: Timeout {timeout}s"
    );
    let sqs: Vec<&Value> = f["Properties"]["Events"]
        .as_object()
        .map(|e| e.values().filter(|e| e["Type"] == "SQS").collect())
        .unwrap_or_default();
    assert_eq!(sqs.len(), 1, "{fid}: one SQS event source");
    let e = &sqs[0]["Properties"];
    assert_eq!(e["Queue"], get_att(queue_id, "Arn"), "{fid}");
    assert_eq!(e["BatchSize"], json!(1), "{fid}: one bounded step each");
    assert_eq!(
        e["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"]),
        "{fid}"
    );

    // The operator function starts jobs on the same queue and reads their records.
    let operator = t.resource(OPERATOR_FUNCTION);
    assert_eq!(
        t.env(operator).get("PROJECTION_REBUILD_QUEUE_URL"),
        Some(&reference(queue_id)),
        "{OPERATOR_FUNCTION}"
    );
}
