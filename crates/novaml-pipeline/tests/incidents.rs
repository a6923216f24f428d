//! The incident API through the router, over a real incident log: feedback labels change the
//! precision and the thresholds the next detection pass uses.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{NoStatus, call, incident};
use novaml_server::AppState;
use novaml_store::StateStore;
use novaml_store::incidents::{IncidentLog, NewIncident};
use prometheus_client::registry::Registry;

fn state_with(log: IncidentLog, token: Option<&str>) -> AppState {
    let mut s = AppState::new(Arc::new(Registry::default()), Arc::new(NoStatus));
    s.incidents = Some(Arc::new(Mutex::new(Box::new(log))));
    s.token = token.map(str::to_owned);
    s
}

#[tokio::test]
async fn feedback_through_the_api_changes_the_real_rates() {
    let mut log = IncidentLog::in_memory().expect("log");
    let inc = incident();
    let mut ids = Vec::new();
    for i in 0..6 {
        let new = NewIncident {
            series: format!("s{}", i % 2),
            kind: inc.kind.as_str().into(),
            severity: inc.severity.as_str().into(),
            start: i * 100_000,
            end: i * 100_000 + 10,
            peak_score: 0.5 + 0.05 * i as f64,
            suppressed: false,
            body: serde_json::to_value(&inc).expect("json"),
        };
        ids.push(log.record(&new, 0, 0).expect("record").id());
    }
    let app = novaml_server::app(state_with(log, Some("secret")));
    let (code, v, _) = call(&app, "GET", "/api/incidents?limit=3", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    assert_eq!(v[0]["body"]["kind"], "latency_spike");

    // Mutations need the token; errors are JSON with a kind.
    let fb = format!("/api/incidents/{}/feedback", ids[0]);
    let (code, v, _) = call(&app, "POST", &fb, None, r#"{"label":"fp"}"#).await;
    assert_eq!(
        (code, v["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (code, _, _) = call(&app, "POST", &fb, Some("wrong!"), r#"{"label":"fp"}"#).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    for bad in [
        r#"{"label":"maybe"}"#,
        r#"{"lbl":"fp"}"#,
        "not json",
        r#"{"label":"TP"}"#,
        "[]",
    ] {
        let (code, v, _) = call(&app, "POST", &fb, Some("secret"), bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(v["kind"], "bad_request");
    }
    let (code, _, _) = call(
        &app,
        "POST",
        "/api/incidents/999/feedback",
        Some("secret"),
        r#"{"label":"tp"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Messages are written for people: what was expected, never an internal type name.
    let (_, v, _) = call(&app, "POST", &fb, Some("secret"), "[]").await;
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(r#"an object like {"label": "tp""#) && !msg.contains("struct"),
        "{msg}"
    );
    let (_, v, _) = call(&app, "POST", &fb, Some("secret"), r#"{"label":"TP"}"#).await;
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains(r#"must be "tp""#) && m.contains(r#"not "TP""#)),
        "{v}"
    );
    // Ids are digits only, as the schema says.
    for id in ["abc", "+45", "-1", "1.0", "%2045"] {
        let (code, v, _) = call(&app, "GET", &format!("/api/incidents/{id}"), None, "").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{id}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("must be a whole number") && !m.contains("i64")),
            "{id}: {v}"
        );
    }

    // Label: 2 false, 3 true → precision 0.6.
    for (i, label) in ["fp", "fp", "tp", "tp", "tp"].iter().enumerate() {
        let uri = format!("/api/incidents/{}/feedback", ids[i]);
        let body = format!(r#"{{"label":"{label}","note":"checked"}}"#);
        let (code, v, _) = call(&app, "POST", &uri, Some("secret"), &body).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        assert_eq!(v["label"], *label);
    }
    let (code, v, _) = call(&app, "GET", "/api/incidents/stats", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["overall"]["true_positives"], 3);
    assert_eq!(v["overall"]["false_positives"], 2);
    assert_eq!(v["overall"]["precision"], 0.6);
    assert_eq!(v["unlabelled"], 1);
    // The false positives scored 0.5 and 0.55, the true ones 0.6+: the threshold moves past
    // the false ones.
    let t = v["thresholds"]["default"].as_f64().expect("number");
    assert!(t > 0.55 && t <= 0.6, "{t}");
    let (code, v, _) = call(&app, "GET", "/api/incidents?label=fp", None, "").await;
    assert_eq!(
        (code, v.as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let (code, _, _) = call(&app, "GET", "/api/incidents?label=bogus", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}
