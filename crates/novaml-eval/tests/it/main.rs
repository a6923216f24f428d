//! The NAB scorer reproduces the published detectors' scores on the dev corpus to ±0.01.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use novaml_eval::nab::{Corpus, PROFILES, score};

fn nab_dir() -> PathBuf {
    novaml_testing::shared_data()
        .expect("../shared/data (the project's shared data) must sit beside the repository")
        .join("nab")
}

fn expected() -> Vec<(String, [f64; 3])> {
    let text =
        std::fs::read_to_string(nab_dir().join("EXPECTED_SCORES.md")).expect("EXPECTED_SCORES.md");
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| detector") && !l.starts_with("|---"))
        .map(|l| {
            let cells: Vec<&str> = l
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let n = |i: usize| cells[i].parse::<f64>().expect("number");
            (cells[0].to_owned(), [n(1), n(2), n(3)])
        })
        .collect()
}

fn published(detector: &str, corpus: &Corpus) -> Vec<Vec<f64>> {
    let path = nab_dir()
        .join("published_detector_scores")
        .join(format!("{detector}.csv.gz"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("scores file"))
        .read_to_string(&mut text)
        .expect("gzip");
    let mut by_file: HashMap<String, Vec<f64>> = HashMap::new();
    for line in text.lines().skip(1) {
        let (f, s) = line.rsplit_once(',').expect("file,anomaly_score");
        by_file
            .entry(f.to_owned())
            .or_default()
            .push(s.parse().expect("score"));
    }
    corpus
        .files
        .iter()
        .map(|f| {
            by_file
                .remove(&f.name)
                .unwrap_or_else(|| panic!("{detector}: no scores for {}", f.name))
        })
        .collect()
}

#[test]
fn reproduces_the_published_scores() {
    let corpus = Corpus::load(&nab_dir()).expect("corpus");
    assert_eq!(corpus.files.len(), 41);
    let table = expected();
    assert_eq!(table.len(), 16);
    let mut failures = Vec::new();
    for (detector, want) in &table {
        let scores = published(detector, &corpus);
        for (profile, want) in PROFILES.iter().zip(want) {
            let got = score(&corpus, &scores, *profile).expect("score").normalized;
            if (got - want).abs() > 0.01 {
                failures.push(format!(
                    "{detector} {}: got {got:.4}, expected {want:.2}",
                    profile.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
