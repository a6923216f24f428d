//! The OpenAPI document's request schemas against the server's behaviour: for every operation,
//! each query parameter and each request-body property, values the schema forbids are answered
//! 400 and values it allows are not. The cases are derived from the schema keywords the document
//! uses (type, enum, minimum, maximum, exclusiveMinimum, maxLength, `not: {const}`, required,
//! additionalProperties), so a schema change is checked without editing this test; a keyword it
//! does not know fails the test instead of being skipped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{NoStatus, call};
use novaml_pipeline::tuning::TuningService;
use novaml_server::AppState;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value, json};

const TOKEN: &str = "s3cret";

/// The keywords this test derives cases from; anything else in a request schema is an error.
const KNOWN: &[&str] = &[
    "type",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "maxLength",
    "not",
    "default",
    "description",
    "format",
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn check_keywords(schema: &Value, at: &str) {
    for k in schema.as_object().expect("schema object").keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "{at}: the schema keyword {k} is not checked by this test"
        );
    }
}

/// Valid values, and invalid ones with the rule each breaks.
type Cases = (Vec<Value>, Vec<(Value, String)>);

/// Values of a scalar schema, as JSON: the valid ones (the first is the smallest, used in the
/// base body) and the invalid ones with the rule they break.
fn cases(schema: &Value, at: &str) -> Cases {
    check_keywords(schema, at);
    let mut good = Vec::new();
    let mut bad: Vec<(Value, String)> = Vec::new();
    let excluded = schema["not"]["const"].clone();
    match schema["type"].as_str().expect("a type") {
        "string" => {
            bad.push((json!(1), "a number for a string".into()));
            bad.push((Value::Null, "null for a string".into()));
            if let Some(values) = schema["enum"].as_array() {
                good.extend(values.iter().cloned());
                bad.push((json!("not-in-the-enum"), "outside the enum".into()));
                for v in values.iter().filter_map(Value::as_str) {
                    if v.to_uppercase() != v {
                        bad.push((json!(v.to_uppercase()), "enum in another case".into()));
                    }
                }
            } else {
                good.push(json!("ok"));
            }
            if let Some(n) = schema["maxLength"].as_u64() {
                good.push(json!("x".repeat(n as usize)));
                bad.push((json!("x".repeat(n as usize + 1)), "over maxLength".into()));
            }
        }
        "integer" | "number" => {
            let integer = schema["type"] == "integer";
            bad.push((json!("1"), "a string for a number".into()));
            bad.push((Value::Null, "null for a number".into()));
            if integer {
                bad.push((json!(1.5), "a fraction for an integer".into()));
            }
            let low = schema["minimum"].as_i64();
            let high = schema["maximum"].as_i64();
            if let Some(m) = low {
                bad.push((json!(m - 1), "under the minimum".into()));
            }
            if let Some(m) = high {
                bad.push((json!(m + 1), "over the maximum".into()));
            }
            let exclusive = schema["exclusiveMinimum"].as_i64();
            if let Some(e) = exclusive {
                bad.push((json!(e), "at the exclusive minimum".into()));
            }
            if !excluded.is_null() {
                bad.push((excluded.clone(), "the excluded constant".into()));
            }
            let first = low.or(exclusive.map(|e| e + 1)).unwrap_or(0);
            good.extend([json!(first), json!(first + 2)]);
            if let Some(m) = high {
                good.push(json!(m));
            }
        }
        other => panic!("{at}: type {other} is not checked by this test"),
    }
    good.retain(|v| *v != excluded);
    (good, bad)
}

/// A query string value for a JSON value (strings unquoted).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

struct Outcome {
    bodies_refused: usize,
    bodies_accepted: usize,
    params_refused: usize,
    params_accepted: usize,
}

#[tokio::test]
async fn every_request_schema_is_enforced_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("novaml.db");
    novaml_store::SqliteStore::open(&db).expect("store");
    let mut reg = Registry::default();
    let tuning =
        TuningService::start("lan-10g", dir.path().join("tuning"), &mut reg).expect("tuning");
    let hub = Arc::new(novaml_pipeline::models::ModelHub::new(
        dir.path().join("models"),
        &mut reg,
    ));
    let mut state = AppState::new(Arc::new(reg), Arc::new(NoStatus));
    state.token = Some(TOKEN.into());
    state.store = Some(novaml_server::StoreReader::new(db));
    state.models = Some(hub);
    state.tuning = Some(tuning.clone());
    state.limiter = Arc::new(novaml_server::limit::RateLimiter::new(1e6, 1e6));
    state.cache = Arc::new(novaml_server::cache::ResponseCache::new(Duration::ZERO));
    let app = novaml_server::app(state);

    // Fill the tuning queue with cheap runs first: a valid run request is then answered 409
    // (after validation) instead of starting the 200-trial runs that the schema allows.
    let cheap = r#"{"tuner":"random","budget":2,"repeats":0}"#;
    let mut full = false;
    for _ in 0..8 {
        let (code, v, _) = call(&app, "POST", "/api/tuning/runs", Some(TOKEN), cheap).await;
        if code == StatusCode::CONFLICT {
            full = true;
            break;
        }
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    }
    assert!(full, "the tuning queue is bounded");

    let doc: Value = serde_json::from_str(novaml_server::OPENAPI).expect("openapi is JSON");
    let mut out = Outcome {
        bodies_refused: 0,
        bodies_accepted: 0,
        params_refused: 0,
        params_accepted: 0,
    };
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let uri = path
            .replace("{id}", "999")
            .replace("{name}", "m")
            .replace("dashboards/m", "dashboards/models");
        for (method, op) in ops.as_object().expect("operations") {
            let method = method.to_uppercase();
            if let Some(rb) = op.get("requestBody") {
                let schema = resolve(&doc, &rb["content"]["application/json"]["schema"]);
                body_cases(&app, &method, &uri, schema, &mut out).await;
            }
            let params = op["parameters"].as_array().into_iter().flatten();
            for p in params.filter(|p| p["in"] == "query") {
                param_cases(&app, &uri, p, &mut out).await;
            }
        }
    }
    eprintln!(
        "bodies: {} refused, {} accepted; query parameters: {} refused, {} accepted",
        out.bodies_refused, out.bodies_accepted, out.params_refused, out.params_accepted
    );
    assert!(out.bodies_refused >= 40, "{} bodies", out.bodies_refused);
    assert!(out.bodies_accepted >= 15, "{} bodies", out.bodies_accepted);
    assert!(out.params_refused >= 15, "{} params", out.params_refused);
    assert!(out.params_accepted >= 20, "{} params", out.params_accepted);
    tuning.wait_idle(Duration::from_secs(120));
}

async fn expect(app: &axum::Router, method: &str, uri: &str, body: &str, valid: bool, why: &str) {
    let (code, v, _) = call(app, method, uri, Some(TOKEN), body).await;
    if valid {
        assert_ne!(
            code,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {body}: refused a value the schema allows ({why}): {v}"
        );
        assert!(code != StatusCode::TOO_MANY_REQUESTS, "{v}");
    } else {
        assert_eq!(
            code,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {body}: accepted a value the schema forbids ({why}): {v}"
        );
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "{v}");
        // Messages are for people: no Rust type names.
        for internal in ["struct ", "enum ", "i64", "u64", "f64", "Option<"] {
            assert!(!msg.contains(internal), "{method} {uri} {body}: {msg}");
        }
    }
}

async fn body_cases(
    app: &axum::Router,
    method: &str,
    uri: &str,
    schema: &Value,
    out: &mut Outcome,
) {
    assert_eq!(schema["type"], "object", "{uri}");
    let props = schema["properties"].as_object().expect("properties");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let cases: Vec<(&String, Cases)> = props
        .iter()
        .map(|(k, s)| (k, cases(s, &format!("{uri} {k}"))))
        .collect();
    // The base body: every property at its first valid value.
    let base: Map<String, Value> = cases
        .iter()
        .map(|(k, (good, _))| ((*k).clone(), good[0].clone()))
        .collect();
    let send = |m: &Map<String, Value>| Value::Object(m.clone()).to_string();
    expect(app, method, uri, &send(&base), true, "base").await;
    out.bodies_accepted += 1;
    // Not objects, including the base's values as an array (serde reads a struct from the
    // array of its fields in order unless told not to), in both orders.
    let values: Vec<Value> = base.values().cloned().collect();
    let reversed: Vec<Value> = values.iter().rev().cloned().collect();
    let arrays = [
        Value::Array(values).to_string(),
        Value::Array(reversed).to_string(),
    ];
    let others = ["[]", "\"x\"", "1", "null", ""].map(String::from);
    for not_an_object in arrays.iter().chain(&others) {
        expect(app, method, uri, not_an_object, false, "not an object").await;
        out.bodies_refused += 1;
    }
    for k in &required {
        let mut b = base.clone();
        b.remove(*k);
        expect(app, method, uri, &send(&b), false, &format!("{k} missing")).await;
        out.bodies_refused += 1;
    }
    for (k, _) in &cases {
        if !required.contains(&k.as_str()) {
            let mut b = base.clone();
            b.remove(*k);
            expect(app, method, uri, &send(&b), true, &format!("{k} left out")).await;
            out.bodies_accepted += 1;
        }
    }
    if schema["additionalProperties"] == false {
        let mut b = base.clone();
        b.insert("unexpected".into(), json!(1));
        expect(app, method, uri, &send(&b), false, "an extra property").await;
        out.bodies_refused += 1;
    }
    for (k, (good, bad)) in &cases {
        for v in good {
            let mut b = base.clone();
            b.insert((*k).clone(), v.clone());
            expect(app, method, uri, &send(&b), true, k).await;
            out.bodies_accepted += 1;
        }
        for (v, why) in bad {
            let mut b = base.clone();
            b.insert((*k).clone(), v.clone());
            expect(app, method, uri, &send(&b), false, &format!("{k}: {why}")).await;
            out.bodies_refused += 1;
        }
    }
}

async fn param_cases(app: &axum::Router, uri: &str, param: &Value, out: &mut Outcome) {
    let name = param["name"].as_str().expect("name");
    let (good, bad) = cases(&param["schema"], &format!("{uri} ?{name}"));
    // Dependencies the parameters' descriptions state: an aggregate needs a step, the end of a
    // range comes after its start (which is an hour ago unless given).
    let companion = match name {
        "agg" => "&step=60",
        "to" => "&from=1",
        _ => "",
    };
    for v in &good {
        let Some(t) = text(v) else { continue };
        let q = format!("{uri}?{name}={}{companion}", urlencode(&t));
        expect(app, "GET", &q, "", true, name).await;
        out.params_accepted += 1;
    }
    for (v, why) in &bad {
        // In a query string every value is text: a string where a number is due is the only type
        // error it can carry, and numbers are valid strings.
        let Some(t) = text(v) else { continue };
        let t = match (param["schema"]["type"].as_str(), v) {
            (Some("integer" | "number"), Value::String(_)) => "x".to_owned(),
            (Some("string"), Value::Number(_)) => continue,
            _ => t,
        };
        let q = format!("{uri}?{name}={}{companion}", urlencode(&t));
        expect(app, "GET", &q, "", false, &format!("{name}: {why}")).await;
        out.params_refused += 1;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
