//! The connection layer over real loopback sockets: half-sent requests and idle kept-alive
//! connections are closed, connections past the cap are answered 503 in JSON, and the server
//! answers again once the hogs are gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use novaml_server::{AppState, ConnLimits, ConnMetrics, PipelineStatus, StatusProvider};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct NoStatus;

impl StatusProvider for NoStatus {
    fn status(&self) -> Result<PipelineStatus, String> {
        Err("not used".into())
    }
}

/// Sends one whole request on `s` and reads the answer's head and body (the server closes or
/// the body is complete).
async fn request(s: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if n == 0 || complete(&text) {
            return text.into_owned();
        }
    }
}

/// Whether `text` holds a whole response with a content-length body.
fn complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .is_some_and(|len| body.len() >= len)
}

/// Waits until the server closes `s` (a read returns 0 or fails); the time it took.
async fn closed_after(s: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => panic!("still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hogs_are_closed_and_connections_past_the_cap_refused_in_json() {
    let mut registry = Registry::default();
    let metrics = ConnMetrics::register(&mut registry);
    let state = AppState::new(Arc::new(registry), Arc::new(NoStatus));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = ConnLimits {
        max_connections: 6,
        header_read_timeout: Duration::from_secs(1),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(novaml_server::serve(
        listener,
        state,
        limits,
        metrics,
        async move {
            let _ = stopped.await;
        },
    ));

    // Six clients take every connection and send half a request line.
    let mut hogs = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        hogs.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The seventh is answered at once: 503, JSON, closed.
    let mut late = TcpStream::connect(addr).await.expect("connect");
    let answer = request(&mut late, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"kind\":\"unavailable\"") && answer.contains("retry-after: 1"),
        "{answer}"
    );

    // The half-sent requests are cut off by the header-read timeout (1 s).
    for s in &mut hogs {
        let after = closed_after(s, Duration::from_secs(5)).await;
        assert!(after < Duration::from_secs(3), "{after:?}");
    }
    // Then the server answers again; a kept-alive connection that goes quiet is closed after
    // the same timeout.
    let mut keep = TcpStream::connect(addr).await.expect("connect");
    let answer = request(&mut keep, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = request(&mut keep, "/metrics").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for line in [
        "novaml_http_connections_refused_total{reason=\"limit\"} 1",
        "novaml_http_connections_timed_out_total 6",
        "novaml_http_connections_limit 6",
        "novaml_http_connections 1",
    ] {
        assert!(answer.contains(line), "{line} missing:\n{answer}");
    }
    assert!(answer.contains("process_open_fds "), "{answer}");
    assert!(answer.contains("process_max_fds "), "{answer}");
    assert!(answer.contains("novaml_sqlite_memory_bytes "), "{answer}");
    // The process's memory: resident, and on glibc the heap held and free.
    let gauge = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert!(
        gauge("process_resident_memory_bytes").is_some_and(|v| v > 1e6),
        "{answer}"
    );
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(
            gauge("novaml_heap_in_use_bytes").is_some_and(|v| v > 0.0),
            "{answer}"
        );
        assert!(gauge("novaml_heap_free_bytes").is_some(), "{answer}");
        assert!(
            gauge("novaml_heap_released_bytes_total").is_some(),
            "{answer}"
        );
    }
    let idle = closed_after(&mut keep, Duration::from_secs(10)).await;
    assert!(
        idle > Duration::from_millis(800) && idle < Duration::from_secs(3),
        "{idle:?}"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .expect("task")
        .expect("serve");
}
