//! The shipped Grafana dashboards and Prometheus alerting rules: every metric they reference is
//! one novaml exports, and every expression is valid PromQL (checked by Debian's `promtool`).

use std::collections::BTreeSet;
use std::process::Command;

use crate::env::need;

/// Every metric family novaml registers (`registry.register("novaml_…", …)` in the crates'
/// sources), by its base name. Read from the code: a family is only encoded once it has a sample,
/// and an idle registry has none.
fn exported() -> BTreeSet<String> {
    let re = regex::Regex::new(r#"register\(\s*"(novaml_[a-z0-9_]+)""#).expect("regex");
    let mut out = BTreeSet::new();
    let mut stack = vec![novaml_testing::repo_root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                out.extend(re.captures_iter(&text).map(|c| c[1].to_owned()));
            }
        }
    }
    out
}

/// Metric names in PromQL text, without the sample suffixes of counters and histograms.
fn referenced(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"novaml_[a-z0-9_]+").expect("regex");
    re.find_iter(text)
        .map(|m| {
            let n = m.as_str();
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

#[test]
fn dashboards_and_alerts_reference_only_exported_metrics_and_valid_promql() {
    let dir = novaml_testing::repo_root().join("dashboards/grafana");
    let exported = exported();
    let mut exprs = Vec::new();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dir).expect("dashboards/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            dashboards += 1;
            let d: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                d["uid"].is_string() && d["title"].is_string(),
                "{}",
                path.display()
            );
            for p in d["panels"].as_array().expect("panels") {
                for t in p["targets"].as_array().expect("targets") {
                    exprs.push(t["expr"].as_str().expect("expr").to_owned());
                }
            }
        }
    }
    assert!(dashboards >= 5, "{dashboards} dashboards");
    // alerts.yml: over novaml's /metrics; vmalert.yml: over the scores written back to a TSDB.
    let rules = ["alerts.yml", "vmalert.yml"]
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .join("\n");
    let mut used = referenced(&rules);
    for e in &exprs {
        used.extend(referenced(e));
    }
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?} (exported: {exported:?})"
    );
    assert!(used.len() >= 10, "{used:?}");

    // promtool checks the alerting rules, and the dashboards' queries as recording rules.
    let promtool = need("promtool");
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(dir.join("alerts.yml"))
        .arg(dir.join("vmalert.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rec = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rec.push_str(&format!(
            "      - record: novaml_dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(e).expect("quote")
        ));
    }
    let path = tmp.path().join("queries.yml");
    std::fs::write(&path, rec).expect("write");
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
