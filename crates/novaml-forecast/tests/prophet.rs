//! Prophet with our L-BFGS optimizer against Python prophet 1.1.6 (cmdstan) on the fixtures made
//! by `scripts/fixtures/prophet_fixtures.py`: yhat over history and future within 1 % of the
//! series' range.

use augurs_prophet::{
    FeatureMode, GrowthType, PredictionData, Prophet, ProphetOptions, SeasonalityOption,
    TrainingData,
};
use novaml_forecast::prophet::LbfgsOptimizer;

struct Fixture {
    ds: Vec<i64>,
    y: Vec<f64>,
    yhat: Vec<f64>,
    cap: Option<f64>,
}

fn load(name: &str) -> Fixture {
    let path = novaml_testing::repo_root().join(format!("fixtures/prophet_{name}.csv"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n);
    let (ids, iy, iyhat, icap) = (
        col("ds").expect("ds"),
        col("y").expect("y"),
        col("yhat").expect("yhat"),
        col("cap"),
    );
    let mut f = Fixture {
        ds: vec![],
        y: vec![],
        yhat: vec![],
        cap: None,
    };
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        f.ds.push(c[ids].parse().expect("ds"));
        if !c[iy].is_empty() {
            f.y.push(c[iy].parse().expect("y"));
        }
        f.yhat.push(c[iyhat].parse().expect("yhat"));
        f.cap = icap.map(|i| c[i].parse().expect("cap"));
    }
    f
}

fn check(name: &str, opts: ProphetOptions) {
    let f = load(name);
    let n = f.y.len();
    let mut train = TrainingData::new(f.ds[..n].to_vec(), f.y.clone()).expect("training data");
    let mut future = PredictionData::new(f.ds.clone());
    if let Some(cap) = f.cap {
        train = train.with_cap(vec![cap; n]).expect("cap");
        future = future.with_cap(vec![cap; f.ds.len()]).expect("cap");
    }
    let mut p = Prophet::new(opts, LbfgsOptimizer::default());
    let t0 = std::time::Instant::now();
    p.fit(train, Default::default()).expect("fits");
    let pred = p.predict(future).expect("predicts");
    let elapsed = t0.elapsed();
    let (lo, hi) =
        f.y.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
    let range = hi - lo;
    let worst = pred
        .yhat
        .point
        .iter()
        .zip(&f.yhat)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let worst_hist = pred.yhat.point[..n]
        .iter()
        .zip(&f.yhat)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{name}: max |yhat − prophet| = {worst:.5} = {:.3} % of the range (history only {:.3} %), fit + predict {elapsed:?}",
        100.0 * worst / range,
        100.0 * worst_hist / range
    );
    assert!(
        worst <= 0.01 * range,
        "{name}: yhat differs from Python prophet by {worst} (range {range})"
    );
}

#[test]
fn hourly_vm_cpu_matches_python_prophet() {
    check("vm_hourly", ProphetOptions::default());
}

#[test]
fn logistic_growth_matches_python_prophet() {
    check(
        "saturating",
        ProphetOptions {
            growth: GrowthType::Logistic,
            yearly_seasonality: SeasonalityOption::Manual(false),
            ..ProphetOptions::default()
        },
    );
}

#[test]
fn multiplicative_seasonality_matches_python_prophet() {
    check(
        "multiplicative",
        ProphetOptions {
            seasonality_mode: FeatureMode::Multiplicative,
            ..ProphetOptions::default()
        },
    );
}
