//! `novaml detect`: incidents of one series (or of every metric of an entity at once) from a
//! file; optionally recorded in the incident log and delivered as alerts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use novaml_anomaly::incident::{DetectConfig, Incident, Suppression, detect};
use novaml_anomaly::multivariate::{Combine, MultivariateParams, detect_entity, entity_of};
use novaml_anomaly::streaming::{DEFAULT_THRESHOLD, StreamingParams};
use novaml_core::{Series, SeriesKey};
use novaml_pipeline::detection::{deliver, feedback, record};
use novaml_pipeline::notify::{Notifier, Webhook, WebhookFormat};
use novaml_store::StateStore;
use novaml_store::incidents::{IncidentLog, Recorded};

/// Arguments of `novaml detect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    series: super::SeriesInput,
    /// A row is anomalous when its score is at least this (scores are in [0, 1]; 0.5 is a tail
    /// probability of 10⁻⁶). With --db, labelled feedback may raise it per series.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Anomalies closer than this many rows to an open incident join it.
    #[arg(long, default_value_t = 12)]
    merge_gap: usize,
    /// Add the CUSUM change-point member to the ensemble (finds slow shifts; more alerts).
    #[arg(long)]
    changepoint: bool,
    /// Add the Holt forecast-residual member to the ensemble.
    #[arg(long)]
    forecast: bool,
    /// Several metrics: how the short-window members (deviation from the last hours, joint
    /// combinations) and the long-memory member (distance from the level of the last days)
    /// combine: short, confirmed (both must agree), long, or mean (of the two scores). `short`
    /// finds combinations that are unusual though each value is in its range (a broken
    /// correlation); `mean` was chosen by leave-one-machine-out on SMD (`novaml eval smd --cv`).
    #[arg(long, default_value_t = MultivariateParams::default().combine)]
    combine: Combine,
    /// A maintenance window: `SELECTOR;START;END[;REASON]`, e.g.
    /// `{host="h1"};2026-11-27T10:00:00Z;2026-11-27T12:00:00Z;kernel upgrade`. Incidents of
    /// matching series in the window are kept but marked suppressed and not alerted. Repeatable.
    #[arg(long = "maintenance", value_name = "WINDOW", value_parser = parse_window)]
    maintenance: Vec<Suppression>,
    /// Record the incidents in this incident log (a novaml SQLite file; created if missing),
    /// merging re-detections, and use the thresholds its feedback labels call for.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Send new, unsuppressed incidents to this Alertmanager (base URL). Repeatable.
    #[arg(long, value_name = "URL")]
    alertmanager: Vec<String>,
    /// Send new, unsuppressed incidents to this URL as JSON (`{"alerts": [...]}`). Repeatable.
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
    /// Write the incidents here (JSON) instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

fn parse_window(s: &str) -> Result<Suppression> {
    let parts: Vec<&str> = s.splitn(4, ';').collect();
    if parts.len() < 3 {
        bail!("expected SELECTOR;START;END[;REASON], got {s:?}");
    }
    let selector = parts[0]
        .parse()
        .map_err(|e| anyhow!("selector {:?}: {e}", parts[0]))?;
    let time = |t: &str| {
        novaml_collect::time::parse_timestamp(t)
            .ok_or_else(|| anyhow!("{t:?} is not a timestamp (RFC 3339 or Unix seconds)"))
    };
    let (start, end) = (time(parts[1])?, time(parts[2])?);
    if end < start {
        bail!("maintenance window {s:?} ends before it starts");
    }
    Ok(Suppression {
        selector,
        start,
        end,
        reason: parts
            .get(3)
            .map_or_else(|| "maintenance".to_owned(), |r| (*r).to_owned()),
    })
}

/// Groups series by entity (their labels without the name).
fn by_entity(series: Vec<Series>) -> BTreeMap<SeriesKey, Vec<Series>> {
    let mut out: BTreeMap<SeriesKey, Vec<Series>> = BTreeMap::new();
    for s in series {
        out.entry(entity_of(&s.key)).or_default().push(s);
    }
    out
}

/// Receivers from the `--alertmanager` and `--webhook` flags.
pub(crate) fn webhooks(alertmanager: &[String], json: &[String]) -> Vec<Webhook> {
    let hook = |format| {
        move |url: &String| Webhook {
            url: url.clone(),
            format,
            bearer_token: None,
        }
    };
    alertmanager
        .iter()
        .map(hook(WebhookFormat::Alertmanager))
        .chain(json.iter().map(hook(WebhookFormat::Json)))
        .collect()
}

pub(crate) fn run(args: Args) -> Result<()> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold {} is outside [0, 1]", args.threshold);
    }
    let params = StreamingParams::default()
        .changepoint(args.changepoint)
        .forecast(args.forecast)
        .check()
        .map_err(|e| anyhow!("{e}"))?;
    let mut cfg = DetectConfig::new(params);
    cfg.threshold = args.threshold;
    cfg.merge_gap = args.merge_gap;
    cfg.suppressions = args.maintenance.clone();
    let mut log = match &args.db {
        Some(p) => Some(
            IncidentLog::open(p)
                .with_context(|| format!("cannot open the incident log {}", p.display()))?,
        ),
        None => None,
    };
    let thresholds = match &mut log {
        Some(l) => Some(feedback(l)?.thresholds),
        None => None,
    };
    let (all, rows) = if args.series.column.is_some() {
        let (s, _) = args.series.load()?;
        let rows = s.points.len();
        (vec![s], rows)
    } else {
        let all = args.series.load_all()?;
        let rows = all.iter().map(|s| s.points.len()).max().unwrap_or(0);
        (all, rows)
    };
    let mut incidents: Vec<Incident> = Vec::new();
    if all.len() == 1 {
        let s = &all[0];
        let key_text = s.key.to_string();
        if let Some(t) = &thresholds {
            cfg.threshold = cfg.threshold.max(t.for_series(&key_text));
        }
        incidents = detect(&s.key, &s.timestamps(), &s.values(), &cfg);
    } else {
        // Several metrics: one multivariate pass per entity.
        for (entity, group) in by_entity(all) {
            let mut c = cfg.clone();
            if let Some(t) = &thresholds {
                c.threshold = c.threshold.max(t.for_series(&entity.to_string()));
            }
            incidents.extend(detect_entity(
                &entity,
                &group,
                &c,
                &MultivariateParams {
                    combine: args.combine,
                    ..MultivariateParams::default()
                },
            )?);
        }
    }

    let now = novaml_core::time::now_ms();
    let mut ids: Vec<Option<i64>> = vec![None; incidents.len()];
    let mut fresh = vec![true; incidents.len()];
    if let Some(log) = log.as_mut() {
        for (i, r) in record(log, &incidents, now)?.into_iter().enumerate() {
            ids[i] = Some(r.id());
            fresh[i] = matches!(r, Recorded::New(_));
        }
    }
    let hooks = webhooks(&args.alertmanager, &args.webhook);
    let mut delivered = 0;
    if !hooks.is_empty() {
        let send: Vec<usize> = (0..incidents.len())
            .filter(|&i| fresh[i] && incidents[i].suppressed.is_none())
            .collect();
        if !send.is_empty() {
            let alerts: Vec<(&Incident, Option<i64>)> =
                send.iter().map(|&i| (&incidents[i], ids[i])).collect();
            let notifier = Notifier::new(
                hooks,
                4,
                Duration::from_millis(500),
                Duration::from_secs(10),
            )?;
            let results =
                super::block_on(async { Ok(deliver(&notifier, &alerts, "", now).await) })?;
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(ToString::to_string))
                .collect();
            if !failed.is_empty() {
                bail!("alert delivery failed: {}", failed.join("; "));
            }
            delivered = send.len();
            if let Some(log) = log.as_mut() {
                for &i in &send {
                    if let Some(id) = ids[i] {
                        log.mark_notified(id)?;
                    }
                }
            }
        }
    }

    let json = serde_json::json!({
        "input": args.series.input.display().to_string(),
        "rows": rows,
        "threshold": cfg.threshold,
        "incidents": incidents.iter().zip(&ids).map(|(inc, id)| {
            let mut v = serde_json::to_value(inc).unwrap_or_default();
            if let (Some(id), Some(o)) = (id, v.as_object_mut()) {
                o.insert("id".into(), (*id).into());
            }
            v
        }).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&json)?;
    match &args.out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => println!("{text}"),
    }
    let suppressed = incidents.iter().filter(|i| i.suppressed.is_some()).count();
    eprintln!(
        "{} incidents ({suppressed} suppressed) in {rows} rows of {}{}",
        incidents.len(),
        args.series.input.display(),
        if delivered > 0 {
            format!("; {delivered} alerts delivered")
        } else {
            String::new()
        }
    );
    Ok(())
}
