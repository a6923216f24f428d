//! Starting real services for tests, and small HTTP helpers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, `KILL`).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.name);
    }

    /// Waits for the process to exit, up to `limit`.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                t0.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The binary, or a clear failure telling how to install it.
pub(crate) fn need(bin: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{bin}` is not installed; run scripts/test.sh (it installs Debian's prometheus and prometheus-node-exporter)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// GET over plain HTTP/1.0; returns (status, body).
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// POST a JSON body over plain HTTP/1.0, with a bearer token when given; returns (status, body).
pub(crate) fn http_post(
    port: u16,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A node_exporter and a Prometheus scraping it every second.
pub(crate) struct Services {
    /// Kept alive for the test.
    pub(crate) _node: Proc,
    pub(crate) prom: Proc,
    pub(crate) node_port: u16,
    pub(crate) prom_port: u16,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn start_services() -> Services {
    start_services_with(None)
}

/// As [`start_services`], with node_exporter's textfile collector reading `textfile` (so a
/// test can publish metrics through it).
pub(crate) fn start_services_with(textfile: Option<&Path>) -> Services {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_port = free_port();
    let mut node_cmd = Command::new(need("prometheus-node-exporter"));
    if let Some(t) = textfile {
        node_cmd.arg(format!("--collector.textfile.directory={}", t.display()));
    }
    let node = Proc {
        child: node_cmd
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
        name: "node_exporter",
    };
    let prom_port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n")).expect("config");
    let prom = Proc {
        child: Command::new(need("prometheus"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("prometheus.log")).expect("log"),
            ))
            .spawn()
            .expect("start prometheus"),
        name: "prometheus",
    };
    wait_for("node_exporter", Duration::from_secs(20), || {
        http_get(node_port, "/metrics").is_some_and(|(s, _)| s == 200)
    });
    wait_for("prometheus ready", Duration::from_secs(30), || {
        http_get(prom_port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    // Wait until a few scrapes are stored.
    wait_for("first scrapes", Duration::from_secs(30), || {
        http_get(prom_port, "/api/v1/query?query=count_over_time(up[1m])")
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
            })
            .is_some_and(|n| n >= 3.0)
    });
    Services {
        _node: node,
        prom,
        node_port,
        prom_port,
        dir,
    }
}

/// Runs `novaml` with args; returns (success, stdout, stderr).
pub(crate) fn novaml(args: &[&str], cwd: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_novaml"))
        .args(args)
        .current_dir(cwd)
        .env("NOVAML_LOG", "warn")
        .output()
        .expect("run novaml");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `novaml` in the background.
pub(crate) fn spawn_novaml(args: &[&str], cwd: &Path, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Proc {
        child: Command::new(env!("CARGO_BIN_EXE_novaml"))
            .args(args)
            .current_dir(cwd)
            .env("NOVAML_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn novaml"),
        name: "novaml",
    }
}
