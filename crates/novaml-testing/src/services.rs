//! Real services started by tests on free loopback ports: Debian's `victoria-metrics`,
//! `prometheus`, `vmalert`, `prometheus-alertmanager` and `postgresql` (installed by
//! `scripts/test.sh`), each with its own throw-away data directory,
//! killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; the service binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The path of an installed binary, or a failure that says how to install it.
pub fn need(bin: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{bin}` is not installed; run scripts/test.sh (it installs the Debian packages the tests use)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `GET path` over HTTP/1.0 on a loopback port; the status, if anything answered.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A service process with its data directory; killed (and the directory removed) when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// Stopped with SIGQUIT when dropped (PostgreSQL: an immediate shutdown that also frees
    /// its shared memory), else SIGKILL.
    quit_on_drop: bool,
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.quit_on_drop {
            let _ = Command::new("kill")
                .args(["-QUIT", &self.child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it the hard way (`kill -9`), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start(bin: &str, args: impl Fn(u16, &str) -> Vec<String>, ready: &str) -> Self {
        let path = need(bin);
        Self::launch(
            bin,
            |port, dir| {
                let mut c = Command::new(&path);
                c.args(args(port, &dir.to_string_lossy()));
                c
            },
            |port, _| http_status(port, ready) == Some(200),
            false,
        )
    }

    /// Starts `command(port, dir)` in a fresh directory on a free port (another, up to five
    /// times, when it dies before `ready(port, log)` holds within 30 s), logging its stderr to
    /// `dir/{name}.log`; fails with the log's end.
    fn launch(
        name: &str,
        command: impl Fn(u16, &std::path::Path) -> Command,
        ready: impl Fn(u16, &str) -> bool,
        quit_on_drop: bool,
    ) -> Self {
        let mut last_log = String::new();
        // A port taken between asking and binding: try another.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let port = free_port();
            let log_path = dir.path().join(format!("{name}.log"));
            let log = std::fs::File::create(&log_path).expect("a log file");
            let child = command(port, dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
            let mut service = Self {
                child,
                port,
                dir,
                quit_on_drop,
            };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if ready(port, &log) {
                    return service;
                }
                if let Ok(Some(_)) = service.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            service.kill();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!(
            "{name} did not become ready; its log ends:\n{}",
            tail(&last_log)
        );
    }

    /// A single-node VictoriaMetrics keeping everything (retention 100 years, so test
    /// timestamps near the epoch are kept) and de-duplicating samples of one timestamp.
    pub fn victoria_metrics() -> Self {
        Self::start(
            "victoria-metrics",
            |port, data| {
                vec![
                    format!("-httpListenAddr=127.0.0.1:{port}"),
                    format!("-storageDataPath={data}/vm"),
                    "-retentionPeriod=100y".into(),
                    "-dedup.minScrapeInterval=1ms".into(),
                    "-loggerLevel=ERROR".into(),
                ]
            },
            "/health",
        )
    }

    /// A Prometheus with its remote-write receiver on, scraping nothing.
    pub fn prometheus_receiver() -> Self {
        Self::start(
            "prometheus",
            |port, data| {
                let config = format!("{data}/prometheus.yml");
                // A configuration with no scrape jobs; written before the process starts.
                std::fs::write(&config, "global:\n  scrape_interval: 1m\n")
                    .expect("prometheus.yml written");
                vec![
                    format!("--config.file={config}"),
                    format!("--storage.tsdb.path={data}/prom"),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--web.enable-remote-write-receiver".into(),
                    "--log.level=error".into(),
                ]
            },
            "/-/ready",
        )
    }
}

impl Service {
    /// An Alertmanager (Debian's `prometheus-alertmanager`) routing everything to a receiver
    /// that sends nothing; its API lists what it received.
    pub fn alertmanager() -> Self {
        Self::start(
            "prometheus-alertmanager",
            |port, data| {
                let config = format!("{data}/am.yml");
                std::fs::write(
                    &config,
                    "route:\n  receiver: none\nreceivers:\n  - name: none\n",
                )
                .expect("am.yml written");
                vec![
                    format!("--config.file={config}"),
                    format!("--storage.path={data}/am"),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--cluster.listen-address=".into(),
                ]
            },
            "/-/ready",
        )
    }

    /// A `vmalert` evaluating `rules` every second over `datasource`, notifying `notifier`.
    pub fn vmalert(rules: &std::path::Path, datasource: &str, notifier: &str) -> Self {
        let rules = rules.display().to_string();
        let (datasource, notifier) = (datasource.to_owned(), notifier.to_owned());
        Self::start(
            "vmalert",
            move |port, _| {
                vec![
                    format!("-rule={rules}"),
                    format!("-datasource.url={datasource}"),
                    format!("-notifier.url={notifier}"),
                    "-evaluationInterval=1s".into(),
                    format!("-httpListenAddr=127.0.0.1:{port}"),
                    "-loggerLevel=ERROR".into(),
                ]
            },
            "/health",
        )
    }
}

impl Service {
    /// A throw-away PostgreSQL cluster (Debian's `postgresql`): `initdb` into the service's
    /// directory, then `postgres` on a free loopback port, trusting local connections of the
    /// user `novaml` (database `postgres`); no fsync, it is thrown away. As root, both run as
    /// the `postgres` user (PostgreSQL refuses to run as root).
    pub fn postgres() -> Self {
        let bin = postgres_bin();
        let as_user = |program: &std::path::Path| -> Command {
            if is_root() {
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--clear-groups",
                    "--",
                ])
                .arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        Self::launch(
            "postgres",
            |port, dir| {
                let data = dir.join("pg");
                if is_root() {
                    let (uid, gid) = postgres_ids();
                    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                        .expect("the cluster directory handed to postgres");
                }
                let init = as_user(&bin.join("initdb"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", "novaml", "--auth=trust", "-E", "UTF8", "--no-sync"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                    .expect("initdb runs");
                assert!(
                    init.status.success(),
                    "initdb failed: {}",
                    String::from_utf8_lossy(&init.stderr)
                );
                let mut c = as_user(&bin.join("postgres"));
                c.arg("-D")
                    .arg(&data)
                    .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                    .arg("-c")
                    .arg(format!("unix_socket_directories={}", dir.display()))
                    .args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
                c
            },
            |port, log| {
                log.contains("ready to accept connections")
                    && TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
            true,
        )
    }

    /// Its connection URL (PostgreSQL services only).
    pub fn postgres_url(&self) -> String {
        format!("postgres://novaml@127.0.0.1:{}/postgres", self.port)
    }
}

/// The newest installed PostgreSQL's `bin` directory, or a failure that says how to install it.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed; run scripts/test.sh (it installs the Debian packages the tests use)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user (Debian's postgresql package creates it)")
    };
    (id("-u"), id("-g"))
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(2_000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    &log[start..]
}
