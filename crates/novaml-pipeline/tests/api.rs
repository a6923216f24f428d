//! The API through the router (`oneshot`) with real components behind it: a SQLite store, a
//! model registry with fitted models, the tuning service on the real transfer engine. Covers the
//! OpenAPI document against the routes, auth failures, malformed input, limits and the dashboards.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{NoStatus, call};
use novaml_core::{Batch, MetricStore, Point, Series, SeriesKey};
use novaml_features::{SeriesFrame, Split};
use novaml_pipeline::models::ModelHub;
use novaml_pipeline::tuning::TuningService;
use novaml_predict::inference::{FitConfig, ModelKind, fit};
use novaml_predict::registry::{Meta, ModelStore};
use novaml_server::{AppState, StoreReader};
use novaml_store::SqliteStore;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";

/// A store with two series of known points (one per minute for 2 hours, ending now).
fn store(dir: &std::path::Path) -> (std::path::PathBuf, i64) {
    let path = dir.join("novaml.db");
    let mut s = SqliteStore::open(&path).expect("store");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        / 60
        * 60_000;
    let series = ["h1", "h2"]
        .iter()
        .enumerate()
        .map(|(k, h)| Series {
            key: SeriesKey::new("cpu_percent")
                .and_then(|key| key.with_label("host", *h))
                .expect("key"),
            points: (0..120)
                .map(|i| Point::new(now - (119 - i) * 60_000, (k * 100) as f64 + i as f64))
                .collect(),
        })
        .collect();
    s.write(&Batch {
        source: "test".into(),
        series,
        cursor: None,
    })
    .expect("write");
    (path, now)
}

/// A registry with a naive (v1) and a ridge (v2) version of `m`, fitted on a seasonal series.
fn registry(root: &std::path::Path) {
    let v = novaml_testing::generators::seasonal(3, 1_200, 48, 0.3);
    let pts: Vec<(i64, f64)> = v
        .iter()
        .enumerate()
        .map(|(i, y)| (i as i64 * 300_000, 50.0 + 10.0 * y))
        .collect();
    let frame = SeriesFrame::from_points(&pts, &[], 300_000).expect("frame");
    let mut cfg = FitConfig::default();
    cfg.data.lookback = 24;
    cfg.data.season = 48;
    let n = frame.len();
    let split = Split::new(n, 0.2, 0.1, &cfg.data).expect("split");
    let store = ModelStore::open(root).expect("registry");
    for kind in [ModelKind::Naive, ModelKind::Ridge] {
        let f = fit(kind, &frame, split, &cfg, None, &mut |_| {}).expect("fit");
        let meta = Meta::of_fit(&f, "test");
        store
            .submit("m", &f.predictor, meta, &frame, (split.val_end, n))
            .expect("submit");
    }
}

struct Fixture {
    app: axum::Router,
    registry: Arc<Registry>,
    dir: tempfile::TempDir,
    now_ms: i64,
    tuning: Arc<TuningService>,
}

fn fixture() -> Fixture {
    fixture_with(novaml_server::limit::RateLimiter::new(2.0, 6.0))
}

fn fixture_with(limiter: novaml_server::limit::RateLimiter) -> Fixture {
    fixture_cached(limiter, Duration::from_secs(1))
}

fn fixture_cached(limiter: novaml_server::limit::RateLimiter, ttl: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, now_ms) = store(dir.path());
    registry(&dir.path().join("models"));
    let mut reg = Registry::default();
    let hub = Arc::new(ModelHub::new(dir.path().join("models"), &mut reg));
    hub.refresh_metrics().expect("metrics");
    let tuning =
        TuningService::start("lan-10g", dir.path().join("tuning"), &mut reg).expect("tuning");
    let registry = Arc::new(reg);
    let mut state = AppState::new(registry.clone(), Arc::new(NoStatus));
    state.token = Some(TOKEN.into());
    state.store = Some(StoreReader::new(db));
    state.models = Some(hub);
    state.tuning = Some(tuning.clone());
    state.limiter = Arc::new(limiter);
    state.cache = Arc::new(novaml_server::cache::ResponseCache::new(ttl));
    Fixture {
        app: novaml_server::app(state),
        registry,
        dir,
        now_ms,
        tuning,
    }
}

fn error_kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("<no kind>")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_errors_are_json() {
    let f = fixture_with(novaml_server::limit::RateLimiter::new(100.0, 100.0));
    let doc: Value = serde_json::from_str(novaml_server::OPENAPI).expect("openapi is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let (code, served, _) = call(&f.app, "GET", "/api/openapi.json", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(served, doc);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let mut checked = 0;
    let mut integer_params = 0;
    for (path, ops) in paths {
        let uri = path
            .replace("{id}", "1")
            .replace("{name}", "m")
            .replace("dashboards/m", "dashboards/models");
        for (method, op) in ops.as_object().expect("operations") {
            let secured = op.get("security").is_some();
            // Without the token, a secured operation must refuse; with it, it must be routed.
            if secured {
                let (code, v, _) = call(&f.app, &method.to_uppercase(), &uri, None, "{}").await;
                assert_eq!(code, StatusCode::UNAUTHORIZED, "{method} {uri}: {v}");
                assert_eq!(error_kind(&v), "unauthorized");
            }
            let body = if uri.ends_with("/feedback") {
                r#"{"label":"tp"}"#
            } else if uri.ends_with("/promote")
                || (uri.ends_with("/rollback") && uri.contains("models"))
            {
                r#"{"version":1}"#
            } else if uri == "/api/tuning/runs" {
                r#"{"tuner":"random","budget":2,"repeats":0}"#
            } else {
                "{}"
            };
            let (code, v, _) = call(&f.app, &method.to_uppercase(), &uri, Some(TOKEN), body).await;
            assert_ne!(
                error_kind(&v),
                "no_route",
                "{method} {uri} is documented but not routed"
            );
            assert_ne!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            let documented: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            assert!(
                documented.iter().any(|c| *c == code.as_str()),
                "{method} {uri} answered {code}, documented {documented:?}: {v}"
            );
            if !code.is_success() {
                assert!(
                    v["message"].is_string(),
                    "{method} {uri}: error without a message: {v}"
                );
            }
            // Integer path parameters take digits only, as the schema's type says.
            let integers = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path" && p["schema"]["type"] == "integer");
            for param in integers {
                let name = param["name"].as_str().expect("name");
                for bad in ["+1", "1.5", "-1", "x"] {
                    let uri = path.replace(&format!("{{{name}}}"), bad);
                    let (code, v, _) =
                        call(&f.app, &method.to_uppercase(), &uri, Some(TOKEN), body).await;
                    assert_eq!(code, StatusCode::BAD_REQUEST, "{method} {uri}: {v}");
                    integer_params += 1;
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 24, "{checked} operations");
    assert!(
        integer_params >= 16,
        "{integer_params} integer path parameters tried"
    );
    f.tuning.wait_idle(Duration::from_secs(120));
    // Undocumented paths and methods answer JSON too.
    let (code, v, _) = call(&f.app, "GET", "/api/nothing", None, "").await;
    assert_eq!((code, error_kind(&v)), (StatusCode::NOT_FOUND, "no_route"));
    let (code, v, _) = call(&f.app, "DELETE", "/api/models", Some(TOKEN), "").await;
    assert_eq!(
        (code, error_kind(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn series_list_and_range_queries_return_the_stored_points() {
    let f = fixture();
    let (code, v, _) = call(&f.app, "GET", "/api/series?match=cpu_percent", None, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let list = v.as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s["points"] == 120));
    let uri = format!(
        "/api/series/query?match=cpu_percent%7Bhost%3D%22h2%22%7D&from={}&to=0",
        f.now_ms / 1000 - 1800
    );
    let (code, v, _) = call(&f.app, "GET", &uri, None, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let pts = v[0]["points"].as_array().expect("points");
    // The last 30 minutes: 31 points at one per minute, the newest is 100 + 119.
    assert_eq!(pts.len(), 31, "{pts:?}");
    assert_eq!(pts.last().expect("last")[1], 219.0);
    assert_eq!(
        pts.last().expect("last")[0].as_f64(),
        Some(f.now_ms as f64 / 1000.0)
    );
    // Ten-minute maxima over the last hour (buckets from the range's start).
    let from = (f.now_ms / 1000) - 3_599;
    let uri = format!(
        "/api/series/query?match=cpu_percent%7Bhost%3D%22h1%22%7D&from={from}&step=600&agg=max"
    );
    let (code, v, _) = call(&f.app, "GET", &uri, None, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let pts = v[0]["points"].as_array().expect("points");
    assert_eq!(pts.len(), 6);
    assert_eq!(pts[5][1], 119.0);
    for (uri, why) in [
        ("/api/series?match=cpu%7Bhost%3D", "match"),
        ("/api/series/query?agg=max", "agg needs a step"),
        ("/api/series/query?step=-5", "step must be positive"),
        ("/api/series/query?from=10&to=5", "before"),
        ("/api/series/query?limit=3", "unknown field"),
    ] {
        let (code, v, _) = call(&f.app, "GET", uri, None, "").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(error_kind(&v), "bad_request");
        assert!(
            v["message"].as_str().unwrap_or("").contains(why),
            "{uri}: {v}"
        );
    }
    // Times beyond year 9999 are refused for what they are, not as a reversed range.
    let (code, v, _) = call(&f.app, "GET", "/api/series/query?to=1e300", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("year 9999") && !msg.contains("before"),
        "{msg}"
    );
}

fn metric(registry: &Registry, line_prefix: &str) -> Option<f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn models_promote_and_roll_back_with_the_token_and_export_the_champion() {
    let f = fixture_with(novaml_server::limit::RateLimiter::new(100.0, 100.0));
    let (code, v, _) = call(&f.app, "GET", "/api/models", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let m = &v[0];
    assert_eq!(m["name"], "m");
    let champion = m["champion"].as_u64().expect("a champion");
    let kinds: Vec<&str> = m["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["naive", "ridge"]);
    // On a seasonal series ridge beats naive on the holdout, so v2 serves.
    assert_eq!(champion, 2, "{m}");
    assert_eq!(
        metric(&f.registry, "novaml_model_version{model=\"m\"}"),
        Some(2.0)
    );
    let rel = metric(&f.registry, "novaml_model_relative_mae{model=\"m\"}").expect("rel");
    assert!(rel < 1.0, "ridge beats naive: {rel}");

    let (code, v, _) = call(
        &f.app,
        "POST",
        "/api/models/m/rollback",
        Some("wrong"),
        r#"{"version":1}"#,
    )
    .await;
    assert_eq!(
        (code, error_kind(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (code, v, _) = call(
        &f.app,
        "POST",
        "/api/models/m/rollback",
        Some(TOKEN),
        r#"{"version":1}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["champion"], 1);
    assert_eq!(
        metric(&f.registry, "novaml_model_version{model=\"m\"}"),
        Some(1.0)
    );
    let (_, v, _) = call(&f.app, "GET", "/api/models/m", None, "").await;
    let log = v["log"].as_array().expect("log");
    assert_eq!(log.last().expect("entry")["action"], "rollback");
    let (code, v, _) = call(
        &f.app,
        "POST",
        "/api/models/m/promote",
        Some(TOKEN),
        r#"{"version":2,"reason":"checked"}"#,
    )
    .await;
    assert_eq!((code, &v["champion"]), (StatusCode::OK, &json!(2)), "{v}");

    for (uri, body, code, kind) in [
        (
            "/api/models/m/promote",
            r#"{"version":9}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/models/nope/promote",
            r#"{"version":1}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/models/m/promote",
            r#"{"version":"two"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            "/api/models/m/promote",
            r#"{"version":1,"extra":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            "/api/models/m/promote",
            "{not json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/models/..%2Fetc/promote",
            r#"{"version":1}"#,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let (got, v, _) = call(&f.app, "POST", uri, Some(TOKEN), body).await;
        // Axum answers type errors in a well-formed body with 422; we pass its status through as a
        // bad request.
        let want = if code == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            code
        };
        assert_eq!(got, want, "{uri} {body}: {v}");
        if !kind.is_empty() {
            assert_eq!(error_kind(&v), kind, "{uri} {body}");
        }
        assert!(v["message"].is_string(), "{v}");
    }
    let (code, v, _) = call(&f.app, "GET", "/api/predictions", None, "").await;
    assert_eq!(
        (code, v),
        (StatusCode::OK, json!([])),
        "no training job ran"
    );
}

#[tokio::test]
async fn bodies_are_limited_and_writes_are_rate_limited() {
    let f = fixture();
    let big = format!(
        r#"{{"version":1,"reason":"{}"}}"#,
        "x".repeat(novaml_server::MAX_BODY)
    );
    let (code, v, _) = call(&f.app, "POST", "/api/models/m/promote", Some(TOKEN), &big).await;
    assert_eq!(
        (code, error_kind(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{v}"
    );
    // The fixture allows bursts of 6 writes; reads are never limited.
    let mut limited = 0;
    for _ in 0..10 {
        let (code, v, _) = call(
            &f.app,
            "POST",
            "/api/models/m/promote",
            Some(TOKEN),
            r#"{"version":2}"#,
        )
        .await;
        if code == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(error_kind(&v), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 4, "{limited} of 10 writes limited");
    for _ in 0..50 {
        let (code, _, _) = call(&f.app, "GET", "/api/models", None, "").await;
        assert_eq!(code, StatusCode::OK);
    }
}

/// Writes without the token are refused before they are counted, and count against their
/// sender only: a client without the token cannot use up the operators' write budget.
#[tokio::test]
async fn refused_writes_do_not_spend_the_operators_budget() {
    let f = fixture();
    let promote = "/api/models/m/promote";
    let mut refused = [0, 0];
    for _ in 0..30 {
        let (code, v, _) = call(&f.app, "POST", promote, None, r#"{"version":1}"#).await;
        match code {
            StatusCode::UNAUTHORIZED => refused[0] += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(error_kind(&v), "rate_limited");
                refused[1] += 1;
            }
            other => panic!("a token-less write answered {other}: {v}"),
        }
    }
    // The fixture allows bursts of 6 (2 more a second): then guessing is slowed down.
    assert!(refused[0] >= 6 && refused[1] >= 15, "{refused:?}");
    let (code, v, _) = call(&f.app, "POST", promote, Some(TOKEN), r#"{"version":1}"#).await;
    assert_eq!(code, StatusCode::OK, "the operator is not locked out: {v}");
    // The scheme is case-insensitive; another scheme or a wrong token is refused.
    let f = fixture();
    for (auth, want) in [
        (format!("bearer {TOKEN}"), StatusCode::OK),
        (format!("BEARER  {TOKEN}"), StatusCode::OK),
        (format!("Basic {TOKEN}"), StatusCode::UNAUTHORIZED),
        ("Bearer s3cre".to_owned(), StatusCode::UNAUTHORIZED),
        (TOKEN.to_owned(), StatusCode::UNAUTHORIZED),
    ] {
        let req = Request::builder()
            .method("POST")
            .uri(promote)
            .header("content-type", "application/json")
            .header("authorization", &auth)
            .body(Body::from(r#"{"version":1}"#))
            .expect("request");
        let resp = f.app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), want, "{auth}");
    }
}

#[tokio::test]
async fn a_tuning_run_through_the_api_measures_the_real_engine() {
    let f = fixture();
    for (body, why) in [
        (r#"{"tuner":"magic"}"#, "tuner"),
        (r#"{"budget":1}"#, "budget"),
        (r#"{"repeats":1}"#, "repeats"),
    ] {
        let (code, v, _) = call(&f.app, "POST", "/api/tuning/runs", Some(TOKEN), body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["message"].as_str().unwrap_or("").contains(why), "{v}");
    }
    let (code, v, _) = call(&f.app, "POST", "/api/tuning/rollback", Some(TOKEN), "").await;
    assert_eq!(
        (code, error_kind(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "nothing to roll back: {v}"
    );
    let (code, v, _) = call(
        &f.app,
        "POST",
        "/api/tuning/runs",
        Some(TOKEN),
        r#"{"tuner":"random","budget":3,"seed":4,"repeats":0}"#,
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_u64().expect("id");
    // Not finished yet: nothing to apply.
    let (code, _, _) = call(
        &f.app,
        "POST",
        &format!("/api/tuning/runs/{id}/apply"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, v, _) = call(&f.app, "GET", "/api/tuning/runs/+1", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        f.tuning.wait_idle(Duration::from_secs(240)),
        "the run finished"
    );
    let (code, run, _) = call(&f.app, "GET", &format!("/api/tuning/runs/{id}"), None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(run["status"], "done", "{run}");
    let trials = run["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 3);
    assert!(
        trials
            .iter()
            .all(|t| t["objective"].as_f64().is_some_and(|g| g > 1e6)),
        "measured goodput: {trials:?}"
    );
    let best = run["best"]["objective"].as_f64().expect("best");
    let max = trials
        .iter()
        .filter_map(|t| t["objective"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(best, max);
    assert_eq!(
        metric(
            &f.registry,
            "novaml_tuner_trials_total{scenario=\"lan-10g\",status=\"measured\"}"
        ),
        Some(3.0)
    );
    assert_eq!(metric(&f.registry, "novaml_tuner_running"), Some(0.0));
    let (_, o, _) = call(&f.app, "GET", "/api/tuning", None, "").await;
    assert_eq!(o["runs"][0]["id"], id);
    assert!(
        o["runs"][0].get("trials").is_none(),
        "the overview leaves trials out"
    );
    assert_eq!(o["runs"][0]["trial_count"], 3);
    // Applying the same run twice while the first apply waits or runs is one job.
    let apply = format!("/api/tuning/runs/{id}/apply");
    for _ in 0..2 {
        let (code, v, _) = call(&f.app, "POST", &apply, Some(TOKEN), "").await;
        assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    }
    let (_, o, _) = call(&f.app, "GET", "/api/tuning", None, "").await;
    let job = format!("apply the best of run {id}");
    let pending = o["queued"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&o["busy"]))
        .filter(|j| j.as_str() == Some(job.as_str()))
        .count();
    assert_eq!(pending, 1, "{o}");
    assert!(f.tuning.wait_idle(Duration::from_secs(240)), "applied");
    let (code, v, _) = call(&f.app, "GET", "/api/tuning/runs/999", None, "").await;
    assert_eq!((code, error_kind(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (code, v, _) = call(&f.app, "GET", "/api/tuning/runs/x", None, "").await;
    assert_eq!(
        (code, error_kind(&v)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[tokio::test]
async fn dashboards_and_their_assets_are_served() {
    let f = fixture();
    for page in ["pipeline", "models", "anomalies", "optimizer", "capacity"] {
        let (code, _, html) = call(&f.app, "GET", &format!("/dashboards/{page}"), None, "").await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert!(html.contains(&format!("data-page=\"{page}\"")), "{page}");
        assert!(html.contains("/assets/uPlot.iife.min.js") && html.contains("/assets/novaml.js"));
        for other in ["pipeline", "models", "anomalies", "optimizer", "capacity"] {
            assert!(
                html.contains(&format!("href=\"/dashboards/{other}\"")),
                "{page} links {other}"
            );
        }
    }
    for (asset, ty) in [
        ("novaml.js", "text/javascript"),
        ("novaml.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
    ] {
        let resp = f
            .app
            .clone()
            .oneshot(
                Request::get(format!("/assets/{asset}"))
                    .body(Body::empty())
                    .expect("req"),
            )
            .await
            .expect("resp");
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let got = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(got.starts_with(ty), "{asset}: {got}");
    }
    let (code, v, _) = call(&f.app, "GET", "/dashboards/nope", None, "").await;
    assert_eq!((code, error_kind(&v)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn reads_are_cached_until_a_write_through_the_api() {
    // A long time to live, so the test does not depend on timing.
    let f = fixture_cached(
        novaml_server::limit::RateLimiter::new(100.0, 100.0),
        Duration::from_secs(600),
    );
    let (_, v, _) = call(&f.app, "GET", "/api/models/m", None, "").await;
    assert_eq!(v["champion"], 2);
    // A change behind the API's back (another process) is not seen while the answer is cached...
    ModelStore::open(f.dir.path().join("models"))
        .expect("registry")
        .promote("m", 1, "elsewhere")
        .expect("promote");
    let (_, v, _) = call(&f.app, "GET", "/api/models/m", None, "").await;
    assert_eq!(v["champion"], 2, "cached");
    // ...but any write through the API drops every cached answer: clients read their writes.
    let (code, _, _) = call(
        &f.app,
        "POST",
        "/api/models/m/promote",
        Some(TOKEN),
        r#"{"version":1}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (_, v, _) = call(&f.app, "GET", "/api/models/m", None, "").await;
    assert_eq!(v["champion"], 1);
    let log = v["log"].as_array().expect("log");
    assert_eq!(log.len(), 4, "both promotions are in the log: {log:?}");
    // Errors are never cached.
    let (code, _, _) = call(&f.app, "GET", "/api/models/zzz", None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
