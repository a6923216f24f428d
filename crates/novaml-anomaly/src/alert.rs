//! Alert payloads for incidents: Alertmanager's API (`POST /api/v2/alerts`) and a generic JSON
//! webhook. Delivery (HTTP, retries) lives in `novaml-server`; this module only builds the
//! documents, so they can be tested without a network.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::incident::Incident;

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertmanagerAlert {
    /// Identity of the alert: `alertname`, the series' labels, `metric`, `type`, `severity`.
    pub labels: BTreeMap<String, String>,
    /// Details: summary, description, peak score, contributors, actions, incident id.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339: in the future while the incident is open (Alertmanager resolves it when it
    /// passes without a refresh), its end once closed.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// Link back to the incident.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// `alertname` of every novaml alert.
pub const ALERT_NAME: &str = "NovamlAnomaly";

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

/// Whether the incident is still open at `now`: its last anomalous row is within `open_for_ms`.
pub fn is_open(inc: &Incident, now: i64, open_for_ms: i64) -> bool {
    inc.end >= now.saturating_sub(open_for_ms)
}

/// The Alertmanager alert of an incident. `id` is its id in the incident log (when stored),
/// `base_url` where the API serves it; an open incident (see [`is_open`]) gets an `endsAt` of
/// `now + open_for_ms`, so it resolves by itself if detection stops refreshing it.
pub fn to_alertmanager(
    inc: &Incident,
    id: Option<i64>,
    base_url: &str,
    now: i64,
    open_for_ms: i64,
) -> AlertmanagerAlert {
    let mut labels = BTreeMap::new();
    for (k, v) in &inc.labels {
        // Our own label names win; a series label of the same name is kept as exported_<name>.
        let k = match k.as_str() {
            "alertname" | "metric" | "type" | "severity" => format!("exported_{k}"),
            _ => k.clone(),
        };
        labels.insert(k, v.clone());
    }
    labels.insert("alertname".into(), ALERT_NAME.into());
    if !inc.metric.is_empty() {
        labels.insert("metric".into(), inc.metric.clone());
    }
    labels.insert("type".into(), inc.kind.as_str().into());
    labels.insert("severity".into(), inc.severity.as_str().into());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".into(),
        format!(
            "{} on {} (peak score {:.2}, {})",
            inc.kind.as_str().replace('_', " "),
            inc.series,
            inc.peak_score,
            inc.severity.as_str()
        ),
    );
    annotations.insert(
        "description".into(),
        inc.contributors
            .iter()
            .map(|c| {
                format!(
                    "{}: {:.4} vs baseline mean {:.4} (p95 {:.4}, z {:+.1})",
                    c.metric, c.value, c.baseline_mean, c.baseline_p95, c.z
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    annotations.insert("peak_score".into(), format!("{:.4}", inc.peak_score));
    annotations.insert("actions".into(), inc.actions.join("; "));
    if let Some(id) = id {
        annotations.insert("incident_id".into(), id.to_string());
    }
    let open = is_open(inc, now, open_for_ms);
    AlertmanagerAlert {
        labels,
        annotations,
        starts_at: rfc3339(inc.start),
        ends_at: rfc3339(if open {
            now.saturating_add(open_for_ms)
        } else {
            inc.end
        }),
        generator_url: match id {
            Some(id) => format!("{}/api/incidents/{id}", base_url.trim_end_matches('/')),
            None => base_url.to_owned(),
        },
    }
}

/// The generic JSON webhook's document for one incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent<'a> {
    /// `firing` while open, `resolved` after.
    pub status: &'static str,
    /// Id in the incident log, when stored.
    pub incident_id: Option<i64>,
    /// The incident.
    pub incident: &'a Incident,
}

impl<'a> WebhookEvent<'a> {
    /// The event of `inc` at `now`.
    pub fn new(inc: &'a Incident, id: Option<i64>, now: i64, open_for_ms: i64) -> Self {
        Self {
            status: if is_open(inc, now, open_for_ms) {
                "firing"
            } else {
                "resolved"
            },
            incident_id: id,
            incident: inc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{DetectConfig, detect};
    use crate::streaming::StreamingParams;
    use novaml_core::SeriesKey;

    fn one_incident() -> Incident {
        let mut v = novaml_testing::generators::seasonal(5, 3_000, 288, 0.5);
        for x in &mut v[2_500..2_510] {
            *x += 40.0;
        }
        let ts: Vec<i64> = (0..3_000)
            .map(|i| 1_700_000_000_000 + i * 300_000)
            .collect();
        let key = SeriesKey::new("dwcp_transfer_latency_ms")
            .and_then(|k| k.with_label("severity", "x"))
            .and_then(|k| k.with_label("host", "h1"))
            .expect("valid");
        let cfg = DetectConfig::new(StreamingParams::default().check().expect("valid"));
        detect(&key, &ts, &v, &cfg).remove(0)
    }

    #[test]
    fn alertmanager_alert_carries_labels_and_details() {
        let inc = one_incident();
        let a = to_alertmanager(&inc, Some(7), "http://127.0.0.1:8600/", inc.end, 600_000);
        assert_eq!(a.labels["alertname"], ALERT_NAME);
        assert_eq!(a.labels["host"], "h1");
        assert_eq!(a.labels["exported_severity"], "x");
        assert_eq!(a.labels["severity"], inc.severity.as_str());
        assert_eq!(a.labels["type"], "latency_spike");
        assert_eq!(a.labels["metric"], "dwcp_transfer_latency_ms");
        assert_eq!(a.annotations["incident_id"], "7");
        assert!(a.annotations["description"].contains("baseline mean"));
        assert_eq!(a.generator_url, "http://127.0.0.1:8600/api/incidents/7");
        assert_eq!(a.starts_at, rfc3339(inc.start));
        // Open: ends in the future; closed: at its end.
        assert_eq!(a.ends_at, rfc3339(inc.end + 600_000));
        let later = to_alertmanager(&inc, None, "x", inc.end + 3_600_000, 600_000);
        assert_eq!(later.ends_at, rfc3339(inc.end));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let e = WebhookEvent::new(&inc, Some(7), inc.end + 3_600_000, 600_000);
        assert_eq!(e.status, "resolved");
    }
}
