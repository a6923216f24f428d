//! The state stores: one suite for SQLite and PostgreSQL (a throw-away cluster), then what only
//! a shared database has: leases between workers, connections lost, migrations, bad URLs.

use novaml_core::Shard;
use novaml_store::incidents::{IncidentFilter, IncidentLog, NewIncident, Recorded};
use novaml_store::{PgState, StateAt, StateStore, StoreError};
use novaml_testing::services::Service;

fn inc(series: &str, start: i64, end: i64, peak: f64) -> NewIncident {
    NewIncident {
        series: series.into(),
        kind: "latency_spike".into(),
        severity: "high".into(),
        start,
        end,
        peak_score: peak,
        suppressed: false,
        body: serde_json::json!({ "peak_score": peak }),
    }
}

/// What every state store does, on a fresh one.
fn suite(log: &mut dyn StateStore) {
    // Recording de-duplicates and keeps feedback.
    let a = log
        .record(&inc("s", 1_000, 2_000, 0.6), 500, 10)
        .expect("ok");
    assert!(matches!(a, Recorded::New(_)));
    assert!(log.label(a.id(), "fp", Some("deploy"), 20).expect("ok"));
    // Seen again, overlapping, with a higher peak: merged, label kept, peak updated.
    let b = log
        .record(&inc("s", 1_500, 3_000, 0.8), 500, 30)
        .expect("ok");
    assert_eq!(b, Recorded::Merged(a.id()));
    let r = log.get(a.id()).expect("ok").expect("exists");
    assert_eq!((r.start, r.end, r.peak_score), (1_000, 3_000, 0.8));
    assert_eq!(r.label.as_deref(), Some("fp"));
    assert_eq!(r.note.as_deref(), Some("deploy"));
    assert_eq!(r.labelled_at, Some(20));
    assert_eq!(r.recorded_at, 10);
    assert_eq!(r.body["peak_score"], 0.8);
    // A lower peak extends without replacing the body.
    log.record(&inc("s", 2_500, 3_200, 0.7), 500, 35)
        .expect("ok");
    let r = log.get(a.id()).expect("ok").expect("exists");
    assert_eq!((r.end, r.peak_score), (3_200, 0.8));
    // Within the de-duplication window: merged; beyond it, or another series: new.
    assert!(matches!(
        log.record(&inc("s", 3_600, 3_700, 0.5), 500, 40),
        Ok(Recorded::Merged(_))
    ));
    assert!(matches!(
        log.record(&inc("s", 10_000, 11_000, 0.5), 500, 40),
        Ok(Recorded::New(_))
    ));
    assert!(matches!(
        log.record(&inc("t", 1_000, 2_000, 0.5), 500, 40),
        Ok(Recorded::New(_))
    ));
    assert_eq!(log.count().expect("ok"), 3);
    assert_eq!(
        log.labelled().expect("ok"),
        vec![("s".into(), "latency_spike".into(), 0.8, "fp".into())]
    );
    assert!(log.get(999_999).expect("ok").is_none());

    // Listing filters, newest first.
    for i in 0..5 {
        log.record(
            &inc("u", 100_000 + i * 10_000, 100_010 + i * 10_000, 0.6),
            0,
            0,
        )
        .expect("ok");
    }
    let u = |label: Option<&str>, since: Option<i64>, limit: Option<usize>| IncidentFilter {
        series: Some("u".into()),
        label: label.map(Into::into),
        since,
        limit,
        ..IncidentFilter::default()
    };
    let all = log.list(&u(None, None, None)).expect("ok");
    assert_eq!(all.len(), 5);
    assert!(all[0].start > all[4].start, "newest first");
    assert!(log.label(all[0].id, "tp", None, 1).expect("ok"));
    assert_eq!(log.list(&u(Some("tp"), None, None)).expect("ok").len(), 1);
    assert_eq!(log.list(&u(Some("none"), None, None)).expect("ok").len(), 4);
    assert_eq!(
        log.list(&u(None, Some(130_000), None)).expect("ok").len(),
        2
    );
    assert_eq!(
        log.list(&u(None, Some(130_000), Some(1)))
            .expect("ok")
            .len(),
        1
    );
    let by_kind = IncidentFilter {
        kind: Some("latency_spike".into()),
        severity: Some("high".into()),
        limit: Some(1_000),
        ..IncidentFilter::default()
    };
    assert_eq!(log.list(&by_kind).expect("ok").len(), 8);
    assert!(matches!(
        log.label(all[0].id, "maybe", None, 1),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(!log.label(999_999, "tp", None, 1).expect("ok"));
    assert!(log.acknowledge(all[1].id).expect("ok"));
    assert!(!log.acknowledge(999_999).expect("ok"));
    log.mark_notified(all[2].id).expect("ok");
    let r1 = log.get(all[1].id).expect("ok").expect("exists");
    let r2 = log.get(all[2].id).expect("ok").expect("exists");
    assert!(r1.acknowledged && !r1.notified && r2.notified && !r2.acknowledged);

    // Checkpoints save together and never move back.
    assert!(log.checkpoints().expect("ok").is_empty());
    log.save_checkpoints(&[("a".into(), 10), ("b".into(), 20)])
        .expect("ok");
    log.save_checkpoints(&[("a".into(), 30), ("b".into(), 5), ("a".into(), 25)])
        .expect("ok");
    let got = log.checkpoints().expect("ok");
    assert_eq!((got["a"], got["b"], got.len()), (30, 20, 2));

    // This worker's shard and its progress.
    assert!(log.shards().expect("ok").is_empty());
    assert!(log.report_shard(Some(1), 1).is_err(), "report before claim");
    let shard = Shard::new(1, 3).expect("valid");
    log.claim_shard(shard, "host:1", 100).expect("claims");
    log.report_shard(Some(5_000), 200).expect("reports");
    log.report_shard(None, 300).expect("reports");
    log.report_shard(Some(4_000), 400).expect("reports");
    let shards = log.shards().expect("ok");
    assert_eq!(shards.len(), 1);
    let s = &shards[0];
    assert_eq!(
        (s.shard, s.holder.as_str(), s.held),
        (shard, "host:1", true)
    );
    assert_eq!(
        (s.claimed_at, s.heartbeat, s.scored_until),
        (100, 400, Some(5_000))
    );
}

#[test]
fn sqlite_state_passes_the_suite_and_keeps_its_schema_version() {
    let mut log = IncidentLog::in_memory().expect("opens");
    suite(&mut log);
    // A file is migrated once: reopening finds its version and changes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("novaml.db");
    let mut first = StateAt::Embedded(path.clone()).open().expect("opens");
    first.record(&inc("s", 0, 1, 0.9), 0, 0).expect("records");
    drop(first);
    let mut again = StateAt::Embedded(path.clone()).open().expect("reopens");
    assert_eq!(again.count().expect("ok"), 1);
    assert!(again.describe().contains("novaml.db"));
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM state_schema ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("versions");
    assert_eq!(versions, vec![1, 2]);
    // A file from a newer build is refused, not misread.
    conn.execute("INSERT INTO state_schema VALUES (99, 0)", [])
        .expect("ok");
    drop(again);
    assert!(matches!(
        StateAt::Embedded(path).open(),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn postgres_state_passes_the_suite_and_shares_leases_between_workers() {
    let pg = Service::postgres();
    let url = pg.postgres_url();
    let mut log = PgState::connect(&url).expect("connects");
    suite(&mut log);
    assert_eq!(
        log.describe(),
        format!("PostgreSQL {url}"),
        "no password to hide here"
    );

    // Another worker sees the same incidents (one fleet, one log).
    let mut other = PgState::connect(&url).expect("connects (migrations already ran)");
    assert_eq!(other.count().expect("ok"), 8);

    // Shard 1/3 is held by `log`: a second claim is refused, naming the holder.
    let one = Shard::new(1, 3).expect("valid");
    match other.claim_shard(one, "host:2", 500) {
        Err(e @ StoreError::ShardTaken { .. }) => {
            assert!(e.to_string().contains("host:1"), "{e}");
        }
        r => panic!("a held shard was claimed twice: {r:?}"),
    }
    // A different split while 1/3 runs is refused too; another shard of the same split is not.
    let four = Shard::new(2, 4).expect("valid");
    assert!(matches!(
        other.claim_shard(four, "host:2", 500),
        Err(StoreError::ShardCountMismatch { .. })
    ));
    other
        .claim_shard(Shard::new(2, 3).expect("valid"), "host:2", 500)
        .expect("a free shard");
    let held: Vec<(String, bool)> = other
        .shards()
        .expect("ok")
        .iter()
        .map(|s| (s.shard.to_string(), s.held))
        .collect();
    assert_eq!(held, vec![("1/3".into(), true), ("2/3".into(), true)]);

    // The holder ends without a word (a crash closes its connections): the lease is free at
    // once, and the shard's progress is kept for the worker that takes it.
    drop(log);
    let mut back = PgState::connect(&url).expect("connects");
    let t0 = std::time::Instant::now();
    loop {
        match back.claim_shard(one, "host:3", 600) {
            Ok(()) => break,
            Err(StoreError::ShardTaken { .. }) if t0.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => panic!("the lease of a closed connection was not freed: {r:?}"),
        }
    }
    let s = back
        .shards()
        .expect("ok")
        .into_iter()
        .find(|s| s.shard == one)
        .expect("listed");
    assert_eq!((s.holder.as_str(), s.scored_until), ("host:3", Some(5_000)));

    // Every connection of the database is cut (PostgreSQL restarted, a proxy dropped them):
    // the next call fails as transient, the one after reconnects, and the lease is re-taken
    // at the next report.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND datname = current_database()",
            &[],
        )
        .expect("terminates");
    let first = back.count();
    if let Err(e) = &first {
        assert!(e.is_transient(), "a lost connection is transient: {e}");
    }
    assert_eq!(back.count().expect("reconnected"), 8);
    back.report_shard(Some(9_000), 700)
        .expect("re-claims and reports");
    let s = admin
        .query_one(
            "SELECT holder, scored_until FROM shard_lease WHERE shard = 1",
            &[],
        )
        .expect("row");
    assert_eq!(s.get::<_, String>(0), "host:3");
    assert_eq!(s.get::<_, Option<i64>>(1), Some(9_000));
    let again = PgState::connect(&url)
        .expect("connects")
        .claim_shard(one, "host:4", 800);
    assert!(
        matches!(again, Err(StoreError::ShardTaken { .. })),
        "the re-taken lease holds: {again:?}"
    );

    // Migrations ran once, in order.
    let versions: Vec<i64> = admin
        .query("SELECT version FROM state_schema ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2]);
    admin
        .execute("INSERT INTO state_schema VALUES (99, 0)", &[])
        .expect("ok");
    assert!(matches!(
        PgState::connect(&url),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn postgres_unreachable_or_misconfigured_is_a_clear_error() {
    let port = novaml_testing::services::free_port();
    let url = format!("postgres://novaml:s3cret@127.0.0.1:{port}/novaml");
    let e = PgState::connect(&url).expect_err("nothing listens there");
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("s3cret"), "the password is not shown: {msg}");
    assert!(e.is_transient(), "unreachable is worth retrying: {msg}");
    let e = PgState::connect("postgres://a:b@[not-a-host/db").expect_err("bad URL");
    assert!(!e.is_transient(), "{e}");
}
