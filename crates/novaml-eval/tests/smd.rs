//! The SMD scorer against the reference `score.py` (its figures on the fixture are in
//! `fixtures/smd/expected.json`; how they were made is in `fixtures/smd/README.md`), and the
//! score files' round trip.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};

use novaml_eval::smd::{self, Labels, Scores};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/smd")
}

fn close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: {want:?}"));
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: ours {got}, score.py {want}"
    );
}

#[test]
fn our_scorer_gives_the_reference_scorers_figures() {
    let dir = fixture();
    let names = smd::machine_names(&dir).expect("machines");
    assert_eq!(names, ["machine-1-2", "machine-1-3"]);
    let labels: Vec<Labels> = names
        .iter()
        .map(|n| Labels::load(&dir, n).expect("labels"))
        .collect();
    let scores: Vec<Scores> = names
        .iter()
        .map(|n| Scores::read_csv(&dir.join("scores").join(format!("{n}.csv.gz"))).expect("scores"))
        .collect();
    let report = smd::score(&labels, &scores).expect("scored");
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected");
    let want: Value = serde_json::from_str(&text).expect("json");
    let o = &report.overall;
    let w = &want["overall"];
    assert_eq!(o.machines as u64, w["machines"].as_u64().expect("n"));
    assert_eq!(o.segments as u64, w["segments"].as_u64().expect("n"));
    assert_eq!(
        o.event_false_alarms_global as u64,
        w["event_false_alarms_global"].as_u64().expect("n")
    );
    let own = o.own.expect("alerts");
    let hr = o.hitrates.expect("top");
    assert_eq!(
        own.alert_false_alarms as u64,
        w["alert_false_alarms"].as_u64().expect("n")
    );
    for (got, key) in [
        (o.event_f1_global, "event_f1_global"),
        (o.event_p_global, "event_p_global"),
        (o.event_r_global, "event_r_global"),
        (o.event_f1_per_machine_mean, "event_f1_per_machine_mean"),
        (o.auc_pr_mean, "auc_pr_mean"),
        (o.auc_pr_pooled, "auc_pr_pooled"),
        (o.pa_f1_global, "pa_f1_global"),
        (own.alert_event_f1, "alert_event_f1"),
        (own.alert_event_p, "alert_event_p"),
        (own.alert_event_r, "alert_event_r"),
        (hr.hitrate100, "hitrate100"),
        (hr.hitrate150, "hitrate150"),
    ] {
        close(got, &w[key], key);
    }
    for (m, w) in report
        .machines
        .iter()
        .zip(want["machines"].as_array().expect("rows"))
    {
        assert_eq!(m.machine, w["machine"].as_str().expect("name"));
        assert_eq!(m.rows as u64, w["rows"].as_u64().expect("n"));
        assert_eq!(m.segments as u64, w["segments"].as_u64().expect("n"));
        assert_eq!(
            m.best_event_false_alarms as u64,
            w["best_event_false_alarms"].as_u64().expect("n")
        );
        for (got, key) in [
            (m.auc_pr, "auc_pr"),
            (m.best_event_f1, "best_event_f1"),
            (m.best_event_p, "best_event_p"),
            (m.best_event_r, "best_event_r"),
            (m.best_event_thr, "best_event_thr"),
            (m.pa_f1, "pa_f1"),
            (m.own.expect("alerts").alert_event_f1, "alert_event_f1"),
            (m.hitrates.expect("top").hitrate100, "hitrate100"),
            (m.hitrates.expect("top").hitrate150, "hitrate150"),
        ] {
            close(got, &w[key], &format!("{} {key}", m.machine));
        }
    }
}

#[test]
fn score_files_round_trip_and_bad_inputs_are_refused_with_reasons() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Scores {
        score: vec![0.5, f64::NAN, 1e-300, 3.0],
        alert: Some(vec![false, false, true, true]),
        top: Some(vec![vec![3, 1], vec![], vec![38], vec![2, 4, 6]]),
    };
    let path = dir.path().join("machine-1-9.csv");
    s.write_csv(&path).expect("written");
    let back = Scores::read_csv(&path).expect("read");
    assert_eq!(back.alert, s.alert);
    assert_eq!(back.top, s.top);
    assert_eq!(back.score[0], 0.5);
    assert!(back.score[1].is_nan());
    assert_eq!(back.score[2..], s.score[2..]);

    // A score file shorter than the test part is refused, naming both lengths.
    let labels = Labels {
        name: "machine-1-9".into(),
        label: vec![false, true, true, false, false],
        interpretation: vec![(1, 3, vec![2])],
    };
    let err = smd::score(std::slice::from_ref(&labels), std::slice::from_ref(&s))
        .expect_err("4 rows for 5");
    assert!(err.to_string().contains("4 score rows"), "{err}");
    // No `score` column.
    std::fs::write(&path, "alert\n1\n").expect("write");
    let err = Scores::read_csv(&path).expect_err("no score");
    assert!(err.to_string().contains("no `score` column"), "{err}");
    // A malformed label file.
    let bad = dir.path().join("machine-1-9.test.csv.gz");
    std::fs::write(&bad, "not gzip").expect("write");
    assert!(Labels::load(dir.path(), "machine-1-9").is_err());
}

#[test]
fn cross_validation_scores_each_machine_at_the_threshold_chosen_on_the_others() {
    // Three machines, 600 rows, one segment each at rows 300..309 scoring 0.92. Machines a and b
    // are quiet elsewhere (0.1); machine c has a 90-row burst at 0.75 far from its segment.
    let machine = |name: &str, burst: bool| {
        let mut label = vec![false; 600];
        let mut score = vec![0.1; 600];
        for i in 300..310 {
            label[i] = true;
            score[i] = 0.92;
        }
        if burst {
            for s in &mut score[50..140] {
                *s = 0.75;
            }
        }
        (
            Labels {
                name: name.into(),
                label,
                interpretation: vec![],
            },
            score,
        )
    };
    let (labels, reported): (Vec<Labels>, Vec<Vec<f64>>) = [
        machine("machine-1-1", false),
        machine("machine-1-2", false),
        machine("machine-1-3", true),
    ]
    .into_iter()
    .unzip();
    let one = [smd::Candidate {
        name: "given",
        reported: &reported,
    }];
    let cv = smd::cross_validate(&labels, &one).expect("cv");
    // On a and b alone every threshold up to 0.9 is perfect: the first (0.2) is chosen, and c
    // held out at 0.2 raises its burst: 90 rows = 2 false alarms (one per started hour).
    assert_eq!(cv.folds[2].threshold, 0.2);
    assert_eq!((cv.folds[2].detected, cv.folds[2].false_alarms), (1, 2));
    // With c among the others, 0.8 is the lowest perfect threshold.
    assert_eq!(cv.folds[0].threshold, 0.8);
    assert_eq!(cv.folds[0].f1, 1.0);
    assert_eq!(cv.in_sample_threshold, 0.8);
    assert_eq!(cv.in_sample_f1, 1.0);
    // Held out: 3 detected, 2 false alarms: P 0.6, R 1.
    assert!((cv.held_out_p - 0.6).abs() < 1e-12 && cv.held_out_r == 1.0);
    assert!((cv.held_out_f1 - 0.75).abs() < 1e-12);
    assert_eq!(cv.folds[2].candidate, "given");
    assert!(
        smd::cross_validate(
            &labels[..1],
            &[smd::Candidate {
                name: "one machine",
                reported: &reported[..1]
            }]
        )
        .is_err()
    );
    assert!(smd::cross_validate(&labels, &[]).is_err());
    // A candidate perfect on every machine up to 0.6 wins every fold over one with a false
    // alarm above that on each machine, though that one comes first.
    let perfect: Vec<Vec<f64>> = labels
        .iter()
        .map(|l| l.label.iter().map(|&a| if a { 0.6 } else { 0.0 }).collect())
        .collect();
    let mut noisy = perfect.clone();
    for r in &mut noisy {
        r[50] = 0.9;
    }
    let two = [
        smd::Candidate {
            name: "noisy",
            reported: &noisy,
        },
        smd::Candidate {
            name: "perfect",
            reported: &perfect,
        },
    ];
    let cv = smd::cross_validate(&labels, &two).expect("cv");
    assert!(
        cv.folds
            .iter()
            .all(|f| f.candidate == "perfect" && f.f1 == 1.0),
        "{cv:?}"
    );
    assert_eq!(cv.held_out_f1, 1.0);
    assert_eq!(cv.in_sample_candidate, "perfect");
    // Ties go to the first candidate: two equal candidates, the first named everywhere.
    let tied = [
        smd::Candidate {
            name: "first",
            reported: &perfect,
        },
        smd::Candidate {
            name: "second",
            reported: &perfect,
        },
    ];
    let cv = smd::cross_validate(&labels, &tied).expect("cv");
    assert!(cv.folds.iter().all(|f| f.candidate == "first"));
    // Scores of the wrong number of machines are an error.
    assert!(
        smd::cross_validate(
            &labels,
            &[smd::Candidate {
                name: "short",
                reported: &perfect[..2]
            }]
        )
        .is_err()
    );
}

#[test]
fn each_rules_reported_score_is_the_one_a_run_with_that_rule_reports() {
    use novaml_anomaly::multivariate::{Combine, MultivariateParams};
    use novaml_anomaly::streaming::StreamingParams;
    // Two metrics over 3,000 train and 1,000 test rows (the long member scores after 1,024),
    // with a jump in the test half.
    let row = |i: usize| {
        let wave = (i as f64 / 40.0).sin();
        let jump = if (3_500..3_520).contains(&i) {
            8.0
        } else {
            0.0
        };
        vec![10.0 + wave + jump, 5.0 + 0.1 * ((i * 7) % 13) as f64]
    };
    let machine = smd::Machine {
        train: (0..3_000).map(row).collect(),
        test: (3_000..4_000).map(row).collect(),
        labels: Labels {
            name: "machine-9-9".into(),
            label: (3_000..4_000)
                .map(|i| (3_500..3_520).contains(&i))
                .collect(),
            interpretation: vec![],
        },
    };
    for (k, rule) in Combine::ALL.into_iter().enumerate() {
        let cfg = smd::RunConfig {
            params: StreamingParams::default().check().expect("valid"),
            multivariate: MultivariateParams {
                combine: rule,
                ..MultivariateParams::default()
            },
            threshold: 0.5,
            top: 2,
        };
        let run = smd::run_machine(&machine, &cfg).expect("runs");
        assert_eq!(run.reported_by_rule.len(), Combine::ALL.len());
        assert_eq!(run.reported_by_rule[k], run.reported, "{rule}");
        assert!(
            run.reported[500..520].iter().any(|s| *s >= 0.5),
            "{rule}: the jump"
        );
    }
}
