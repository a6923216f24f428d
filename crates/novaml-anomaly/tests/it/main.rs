//! The isolation forest against scikit-learn on the same data (fixture written by
//! `scripts/fixtures/isolation_forest.py`).

use novaml_anomaly::isolation_forest::{IsolationForestParams, MaxSamples};

fn fixture() -> (Vec<f64>, Vec<f64>) {
    let text =
        std::fs::read_to_string(novaml_testing::repo_root().join("fixtures/iforest_sklearn.csv"))
            .expect("fixture");
    let (mut x, mut s) = (Vec::new(), Vec::new());
    for line in text.lines().skip(2) {
        let v: Vec<f64> = line
            .split(',')
            .map(|c| c.parse().expect("number"))
            .collect();
        x.extend_from_slice(&v[..4]);
        s.push(v[4]);
    }
    (x, s)
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    for (rank, i) in idx.into_iter().enumerate() {
        r[i] = rank as f64;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn agrees_with_scikit_learn() {
    let (x, sk) = fixture();
    assert_eq!(sk.len(), 2_000);
    for seed in [1, 2] {
        let forest = IsolationForestParams::default()
            .n_estimators(1_000)
            .max_samples(MaxSamples::Count(256))
            .seed(seed)
            .check()
            .expect("valid")
            .fit(&x, 4)
            .expect("fit");
        let ours = forest.anomaly_score(&x).expect("score");
        let rho = spearman(&ours, &sk);
        eprintln!("seed {seed}: Spearman rank correlation with scikit-learn {rho:.4}");
        assert!(rho >= 0.99, "seed {seed}: Spearman {rho:.4} < 0.99");
        // Seed-independent statistics of the score distribution.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean(&ours) - mean(&sk)).abs() < 0.01,
            "mean {} vs {}",
            mean(&ours),
            mean(&sk)
        );
        for q in [0.1, 0.5, 0.9, 0.99] {
            let (a, b) = (quantile(&ours, q), quantile(&sk, q));
            assert!(
                (a - b).abs() < 0.01,
                "seed {seed}: quantile {q}: {a:.4} vs {b:.4}"
            );
        }
    }
}
