//! File import on the real formats of our evaluation data (small heads kept in `fixtures/`) and
//! on random CSV.

use std::path::PathBuf;

use novaml_collect::sources::file::{FileConfig, import};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    novaml_testing::repo_root().join("fixtures").join(name)
}

fn names(path: PathBuf) -> (Vec<String>, novaml_collect::sources::file::Imported) {
    let imp = import(&FileConfig {
        path,
        ..FileConfig::default()
    })
    .expect("import");
    (imp.series.iter().map(|s| s.key.name.clone()).collect(), imp)
}

#[test]
fn nab_bitbrains_gwa_and_alibaba_formats() {
    let (n, imp) = names(fixture("nab_ec2_cpu_utilization_24ae8d_head.csv"));
    assert_eq!(n, vec!["value"]);
    assert_eq!(imp.series[0].points.len(), 120);
    assert_eq!(imp.series[0].points[0].ts, 1_392_388_200_000); // 2014-02-14 14:30:00 UTC
    assert!(imp.skipped.is_empty());

    let (n, imp) = names(fixture("bitbrains_vm_194_head.csv"));
    assert_eq!(
        n,
        [
            "cpu_cores",
            "cpu_capacity_mhz",
            "cpu_usage_mhz",
            "cpu_pct",
            "mem_capacity_kb",
            "mem_usage_kb",
            "disk_read_kbps",
            "disk_write_kbps",
            "net_rx_kbps",
            "net_tx_kbps"
        ]
    );
    let cpu = &imp.series[3];
    assert_eq!(
        (cpu.points[0].ts, cpu.points[0].value),
        (1_372_629_804_000, 57.317)
    );
    assert_eq!(cpu.points.len(), 50);

    let (raw_names, raw) = names(fixture("gwa_t12_raw_192_head.csv"));
    assert_eq!(raw_names, n, "raw GWA headers map to the processed names");
    assert_eq!(raw.series[3].points[0].value, 10.0); // CPU usage [%] of the first row
    assert_eq!(raw.series[3].points.len(), 20);

    let (n, imp) = names(fixture("alibaba2018_head_grouped_300_seconds.csv"));
    assert_eq!(
        n,
        [
            "cpu_util_percent",
            "mem_util_percent",
            "net_in",
            "net_out",
            "disk_io_percent"
        ]
    );
    let ts = imp.series[0].timestamps();
    assert_eq!(
        (ts[0], ts[1], ts.len()),
        (0, 300_000, 50),
        "row i is i·300 s"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]

    /// Arbitrary bytes after a valid header never panic, and every row is either imported or counted.
    #[test]
    fn csv_import_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.csv");
        let mut bytes = b"timestamp,value\n".to_vec();
        bytes.extend_from_slice(&body);
        std::fs::write(&path, &bytes).expect("write");
        let _ = import(&FileConfig { path, ..FileConfig::default() });
    }

    /// Written rows come back exactly (timestamps in any supported form, values bit for bit).
    #[test]
    fn csv_rows_round_trip(rows in proptest::collection::btree_map(100_000_000i64..2_000_000_000, -1e9f64..1e9, 1..40), form in 0usize..3) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        let mut text = String::from("time,cpu\n");
        for (t, v) in &rows {
            let stamp = match form {
                0 => t.to_string(),
                1 => (t * 1000).to_string(),
                _ => chrono::DateTime::from_timestamp(*t, 0).expect("ts").format("%Y-%m-%d %H:%M:%S").to_string(),
            };
            text.push_str(&format!("{stamp},{v}\n"));
        }
        std::fs::write(&path, text).expect("write");
        let imp = import(&FileConfig { path, ..FileConfig::default() }).expect("import");
        let got: Vec<(i64, f64)> = imp.series[0].points.iter().map(|p| (p.ts, p.value)).collect();
        let want: Vec<(i64, f64)> = rows.iter().map(|(t, v)| (t * 1000, *v)).collect();
        prop_assert_eq!(got, want);
    }
}
