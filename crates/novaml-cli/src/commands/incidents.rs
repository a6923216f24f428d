//! `novaml incidents`: list incidents, label them true/false positive, and see what the labels
//! say (precision, false-alarm share, adapted thresholds).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use novaml_anomaly::feedback::Label;
use novaml_pipeline::detection::feedback;
use novaml_store::incidents::IncidentFilter;
use novaml_store::{StateAt, StateStore};

/// Arguments of `novaml incidents`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The incident log (the store of `novaml demo`, or a file given to `novaml detect --db`).
    #[arg(long, value_name = "FILE", default_value = "novaml-data/novaml.db")]
    db: PathBuf,
    /// A fleet's shared state instead (`[state] postgres` of its workers): every worker's
    /// incidents.
    #[arg(
        long,
        value_name = "URL",
        env = "NOVAML__STATE__POSTGRES",
        conflicts_with = "db"
    )]
    postgres: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List incidents, newest first (JSON lines).
    List {
        /// Only this label: tp, fp, or none (unlabelled).
        #[arg(long)]
        label: Option<String>,
        /// Only this type (latency_spike, throughput_drop, …).
        #[arg(long = "type")]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one incident (JSON).
    Show {
        /// Incident id.
        id: i64,
    },
    /// Mark an incident a true positive (tp) or a false positive (fp).
    Label {
        /// Incident id.
        id: i64,
        /// tp or fp.
        label: String,
        /// Why (kept with the label).
        #[arg(long)]
        note: Option<String>,
    },
    /// Acknowledge an incident.
    Ack {
        /// Incident id.
        id: i64,
    },
    /// Precision and false-alarm share from the labels, per type, and the adapted thresholds.
    Stats,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let at = match args.postgres {
        Some(url) => StateAt::Postgres(url),
        None => {
            if !args.db.exists() {
                bail!(
                    "{} does not exist; run `novaml demo` or `novaml detect --db {}` first",
                    args.db.display(),
                    args.db.display()
                );
            }
            StateAt::Embedded(args.db.clone())
        }
    };
    let mut log: Box<dyn StateStore> = at
        .open()
        .with_context(|| format!("cannot open {}", at.describe()))?;
    match args.action {
        Action::List { label, kind, limit } => {
            if let Some(l) = &label
                && !matches!(l.as_str(), "tp" | "fp" | "none")
            {
                bail!("--label must be tp, fp or none, not {l:?}");
            }
            let rows = log.list(&IncidentFilter {
                label,
                kind,
                limit: Some(limit),
                ..IncidentFilter::default()
            })?;
            for r in rows {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": r.id, "series": r.series, "type": r.kind, "severity": r.severity,
                        "start": r.start, "end": r.end, "peak_score": r.peak_score,
                        "suppressed": r.suppressed, "label": r.label, "acknowledged": r.acknowledged,
                    })
                );
            }
        }
        Action::Show { id } => match log.get(id)? {
            Some(r) => println!("{}", serde_json::to_string_pretty(&r)?),
            None => bail!("no incident {id} in {}", at.describe()),
        },
        Action::Label { id, label, note } => {
            let Some(l) = Label::parse(&label) else {
                bail!("label must be tp or fp, not {label:?}");
            };
            if !log.label(id, l.as_str(), note.as_deref(), novaml_core::time::now_ms())? {
                bail!("no incident {id} in {}", at.describe());
            }
            eprintln!("incident {id} labelled {}", l.as_str());
        }
        Action::Ack { id } => {
            if !log.acknowledge(id)? {
                bail!("no incident {id} in {}", at.describe());
            }
            eprintln!("incident {id} acknowledged");
        }
        Action::Stats => {
            let s = feedback(log.as_mut())?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
    }
    Ok(())
}
