//! The HDE/AMST transfer engine: chunked, compressed, optionally delta-encoded transfer of a
//! payload over N parallel TCP streams on loopback, through an emulated link.
//!
//! The link is emulated where loopback differs from a WAN: one shared bottleneck serialises the
//! streams' frames at the link's bandwidth (a virtual clock: each frame reserves the link for
//! `bytes / bandwidth`), and the receiver acknowledges each frame one RTT after it arrived, so
//! that each stream's in-flight bytes (bounded by the scenario's per-stream window, as TCP's
//! window bounds it) limit its throughput to `window / RTT`. More streams help on long links;
//! compression helps on slow links and costs CPU on fast ones; chunk size trades framing and
//! pipeline depth against parallelism. Everything else is real: TCP sockets, compression and
//! decompression, CRC and byte-for-byte checks at the receiver, CPU time from /proc.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::TuneError;
use crate::payload::PAGE;
use crate::space::{Condition, Config, Domain, Param, Space, boolean, choice, int};

/// An emulated network link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Bandwidth, bits per second.
    pub bandwidth_bps: f64,
    /// Round-trip time.
    pub rtt_ms: f64,
    /// Bytes one stream may have unacknowledged (its TCP window).
    pub window_bytes: usize,
}

/// A tuning scenario: a link and what is sent over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// The link.
    pub link: Link,
    /// Payload kind (see [`crate::payload::KINDS`]).
    pub payload: String,
    /// Payload size, bytes. A run takes ~0.2–2 s depending on the configuration (uncompressed:
    /// ~2 s on wan-100m, ~1 s on wan-1g, ~0.2 s on lan-10g, where the CPU is the limit).
    pub bytes: usize,
    /// Share of pages that changed since the receiver's baseline (delta encoding's gain).
    pub dirty_share: f64,
}

/// The built-in scenarios.
pub fn scenarios() -> Vec<Scenario> {
    let mib = 1 << 20;
    vec![
        Scenario {
            name: "lan-10g".into(),
            link: Link {
                bandwidth_bps: 10e9,
                rtt_ms: 0.2,
                window_bytes: 4 * mib,
            },
            payload: "vm-memory".into(),
            bytes: 256 * mib,
            dirty_share: 0.3,
        },
        Scenario {
            name: "wan-1g".into(),
            link: Link {
                bandwidth_bps: 1e9,
                rtt_ms: 20.0,
                window_bytes: mib,
            },
            payload: "vm-memory".into(),
            bytes: 128 * mib,
            dirty_share: 0.3,
        },
        Scenario {
            name: "wan-100m".into(),
            link: Link {
                bandwidth_bps: 100e6,
                rtt_ms: 80.0,
                window_bytes: mib,
            },
            payload: "vm-memory".into(),
            bytes: 24 * mib,
            dirty_share: 0.3,
        },
    ]
}

/// The scenario named `name`.
pub fn scenario(name: &str) -> Result<Scenario, TuneError> {
    let all = scenarios();
    let known = all
        .iter()
        .map(|s| s.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    all.into_iter()
        .find(|s| s.name == name)
        .ok_or(TuneError::Unknown {
            what: "scenario",
            name: name.into(),
            known,
        })
}

/// The engine's parameters.
pub fn space() -> Space {
    let p = |name: &str, domain, default, help: &str| Param {
        name: name.into(),
        domain,
        default,
        help: help.into(),
        active_if: None,
    };
    let zstd_only = |mut p: Param| {
        p.active_if = Some(Condition {
            param: "algorithm".into(),
            values: vec![json!("zstd")],
        });
        p
    };
    Space {
        params: vec![
            p(
                "algorithm",
                Domain::Choice {
                    values: vec!["zstd".into(), "lz4".into(), "none".into()],
                },
                json!("zstd"),
                "compression algorithm",
            ),
            zstd_only(p(
                "level",
                Domain::Int {
                    lo: 1,
                    hi: 19,
                    log: false,
                    step: 1,
                },
                json!(3),
                "zstd level (zstd only)",
            )),
            zstd_only(p(
                "long_window",
                Domain::Bool,
                json!(false),
                "zstd long-distance matching with a 128 MiB window (zstd only)",
            )),
            p(
                "chunk_kib",
                Domain::Int {
                    lo: 64,
                    hi: 8192,
                    log: true,
                    step: 4,
                },
                json!(1024),
                "chunk size, KiB (a multiple of 4 KiB pages)",
            ),
            p(
                "streams",
                Domain::Int {
                    lo: 1,
                    hi: 16,
                    log: true,
                    step: 1,
                },
                json!(4),
                "parallel TCP streams",
            ),
            p(
                "delta",
                Domain::Bool,
                json!(false),
                "send only pages that differ from the receiver's baseline",
            ),
        ],
    }
}

/// The engine's parameters, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferParams {
    /// `zstd`, `lz4` or `none`.
    pub algorithm: String,
    /// zstd level.
    pub level: i32,
    /// zstd long window.
    pub long_window: bool,
    /// Chunk size, bytes.
    pub chunk: usize,
    /// Streams.
    pub streams: usize,
    /// Delta encoding against the baseline.
    pub delta: bool,
}

impl TransferParams {
    /// From a validated configuration.
    pub fn from_config(c: &Config) -> Result<Self, TuneError> {
        let chunk_kib = int(c, "chunk_kib")?;
        if chunk_kib.rem_euclid(4) != 0 {
            return Err(TuneError::param(
                "chunk_kib",
                format!("{chunk_kib} is not a multiple of 4 (whole pages)"),
            ));
        }
        Ok(Self {
            algorithm: choice(c, "algorithm")?.to_owned(),
            level: int(c, "level")? as i32,
            long_window: boolean(c, "long_window")?,
            chunk: chunk_kib as usize * 1024,
            streams: int(c, "streams")? as usize,
            delta: boolean(c, "delta")?,
        })
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Original (uncompressed) bits delivered and verified per second (the objective).
    pub goodput_bps: f64,
    /// Wall time, s.
    pub seconds: f64,
    /// CPU time of the process (sender and receiver), s.
    pub cpu_seconds: f64,
    /// Original bytes over bytes on the wire.
    pub compression_ratio: f64,
    /// Bytes on the wire (frames, headers included).
    pub wire_bytes: u64,
    /// Original bytes delivered.
    pub payload_bytes: u64,
    /// Chunks sent.
    pub chunks: u64,
}

const MAGIC: u32 = 0x4e4d_4c54; // "NMLT"
const END: u32 = u32::MAX;
const HEADER: usize = 21;

struct Frame {
    seq: u32,
    raw_len: u32,
    crc: u32,
    body: Vec<u8>,
}

fn encode(p: &TransferParams, chunk: &[u8], base: Option<&[u8]>) -> Result<Vec<u8>, TuneError> {
    // Delta: a bitmap of the pages that differ from the baseline, then only those pages.
    let mut changed = Vec::with_capacity(chunk.len());
    let mut head = Vec::new();
    let data: &[u8] = match base {
        Some(base) if p.delta => {
            let pages = chunk.len().div_ceil(PAGE);
            let mut bitmap = vec![0u8; pages.div_ceil(8)];
            for (i, (a, b)) in chunk.chunks(PAGE).zip(base.chunks(PAGE)).enumerate() {
                if a != b {
                    bitmap[i / 8] |= 1 << (i % 8);
                    changed.extend_from_slice(a);
                }
            }
            head.extend_from_slice(&bitmap);
            &changed
        }
        _ => chunk,
    };
    let packed = match p.algorithm.as_str() {
        "zstd" => {
            let mut c = zstd::bulk::Compressor::new(p.level).map_err(io)?;
            if p.long_window {
                c.long_distance_matching(true).map_err(io)?;
                c.window_log(27).map_err(io)?;
            }
            c.compress(data).map_err(io)?
        }
        "lz4" => lz4_flex::block::compress(data),
        _ => data.to_vec(),
    };
    head.extend_from_slice(&packed);
    Ok(head)
}

fn decode(
    p: &TransferParams,
    body: &[u8],
    raw_len: usize,
    base: Option<&[u8]>,
) -> Result<Vec<u8>, TuneError> {
    let pages = raw_len.div_ceil(PAGE);
    let (bitmap, packed) = match base {
        Some(_) if p.delta => {
            let n = pages.div_ceil(8);
            if body.len() < n {
                return Err(TuneError::Run("truncated delta frame".into()));
            }
            body.split_at(n)
        }
        _ => (&[][..], body),
    };
    let changed_len = if bitmap.is_empty() {
        raw_len
    } else {
        (0..pages)
            .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .map(|i| PAGE.min(raw_len - i * PAGE))
            .sum()
    };
    let data = match p.algorithm.as_str() {
        "zstd" => {
            let mut d = zstd::bulk::Decompressor::new().map_err(io)?;
            if p.long_window {
                d.window_log_max(27).map_err(io)?;
            }
            d.decompress(packed, changed_len).map_err(io)?
        }
        "lz4" => lz4_flex::block::decompress(packed, changed_len)
            .map_err(|e| TuneError::Run(format!("lz4: {e}")))?,
        _ => packed.to_vec(),
    };
    if data.len() != changed_len {
        return Err(TuneError::Run(format!(
            "decoded {} bytes, expected {changed_len}",
            data.len()
        )));
    }
    match base {
        Some(base) if p.delta => {
            let mut out = Vec::with_capacity(raw_len);
            let mut at = 0;
            for (i, b) in base.chunks(PAGE).enumerate().take(pages) {
                if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                    out.extend_from_slice(&data[at..at + b.len()]);
                    at += b.len();
                } else {
                    out.extend_from_slice(b);
                }
            }
            Ok(out)
        }
        _ => Ok(data),
    }
}

fn io(e: std::io::Error) -> TuneError {
    TuneError::Run(e.to_string())
}

fn cpu_seconds() -> f64 {
    use procfs::process::Process;
    let tps = procfs::ticks_per_second() as f64;
    Process::myself()
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / tps)
        .unwrap_or(0.0)
}

/// The shared bottleneck: a virtual clock that serialises frames at the link's rate.
struct Bottleneck {
    next_free: Mutex<Instant>,
    bytes_per_sec: f64,
}

impl Bottleneck {
    fn transmit(&self, bytes: usize) {
        let dur = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        let done = {
            let mut nf = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*nf).max(Instant::now());
            *nf = start + dur;
            *nf
        };
        let now = Instant::now();
        if done > now {
            std::thread::sleep(done - now);
        }
    }
}

/// One stream's unacknowledged bytes.
struct Inflight {
    bytes: Mutex<(usize, HashMap<u32, usize>)>,
    cv: Condvar,
}

fn write_frame(s: &mut TcpStream, f: &Frame) -> std::io::Result<()> {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&f.seq.to_le_bytes());
    h[8..12].copy_from_slice(&f.raw_len.to_le_bytes());
    h[12..16].copy_from_slice(&(f.body.len() as u32).to_le_bytes());
    h[16..20].copy_from_slice(&f.crc.to_le_bytes());
    s.write_all(&h)?;
    s.write_all(&f.body)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sends `payload` (with `baseline` at the receiver for delta encoding) over the scenario's
/// link with `params`, verifies it at the receiver, and measures the run. Gives up after
/// `timeout`.
pub fn run(
    link: &Link,
    params: &TransferParams,
    payload: &[u8],
    baseline: Option<&[u8]>,
    timeout: Duration,
) -> Result<Measurement, TuneError> {
    if payload.is_empty() {
        return Err(TuneError::Run("the payload is empty".into()));
    }
    if let Some(b) = baseline
        && b.len() != payload.len()
    {
        return Err(TuneError::Run("the baseline's size differs".into()));
    }
    if params.chunk == 0 || !params.chunk.is_multiple_of(PAGE) || params.streams == 0 {
        return Err(TuneError::param(
            "chunk_kib",
            "whole pages, at least one stream",
        ));
    }
    // The threads borrow the payload and the baseline (scoped threads): a trial used to copy
    // both first, 2 x 256 MiB more on the heap per lan-10g trial, and `novaml demo`'s RSS swung
    // between 0.5 and 1 GB while it tuned.
    let chunk = params.chunk;
    let n_chunks = payload.len().div_ceil(chunk);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let abort = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let wire = Arc::new(AtomicU64::new(0));
    let rtt = Duration::from_secs_f64(link.rtt_ms / 1e3);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let total = payload.len() as u64;
    let mut sockets = Vec::new();
    let (outcome, seconds) = std::thread::scope(|scope| {
        // Joined by hand below: a panicking thread is then a failed trial, as it was with
        // detached threads, instead of a panic in the caller (the tuning worker).
        let mut handles = Vec::new();
        let outcome = (|| -> Result<(), TuneError> {
            let (err_tx, err_rx) = mpsc::channel::<TuneError>();
            // Compressors feed the senders through one bounded queue.
            let streams = params.streams;
            let (frame_tx, frame_rx) = mpsc::sync_channel::<Frame>(streams * 2 + 2);
            let frame_rx = Arc::new(Mutex::new(frame_rx));
            let bottleneck = Arc::new(Bottleneck {
                next_free: Mutex::new(Instant::now()),
                bytes_per_sec: link.bandwidth_bps / 8.0,
            });

            for _ in 0..streams {
                let client = TcpStream::connect(addr).map_err(io)?;
                let (server, _) = listener.accept().map_err(io)?;
                client.set_nodelay(true).map_err(io)?;
                server.set_nodelay(true).map_err(io)?;
                sockets.push(client.try_clone().map_err(io)?);
                sockets.push(server.try_clone().map_err(io)?);
                // Receiver: a reader per stream; its acks leave one RTT after the frame arrived.
                let mut reader = server.try_clone().map_err(io)?;
                let mut acker = server;
                let (ack_tx, ack_rx) = mpsc::channel::<(Instant, u32)>();
                handles.push(scope.spawn(move || {
                    while let Ok((due, seq)) = ack_rx.recv() {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        if acker.write_all(&seq.to_le_bytes()).is_err() {
                            break;
                        }
                    }
                }));
                let params = params.clone();
                let (verified, err_tx2, abort2) = (verified.clone(), err_tx.clone(), abort.clone());
                handles.push(scope.spawn(move || {
                    let mut h = [0u8; HEADER];
                    loop {
                        if reader.read_exact(&mut h).is_err() {
                            if !abort2.load(Ordering::Relaxed) {
                                let _ =
                                    err_tx2.send(TuneError::Run("a stream closed early".into()));
                            }
                            return;
                        }
                        if u32_at(&h, 0) != MAGIC {
                            let _ = err_tx2.send(TuneError::Run("bad frame magic".into()));
                            return;
                        }
                        let seq = u32_at(&h, 4);
                        if seq == END {
                            return;
                        }
                        let raw_len = u32_at(&h, 8) as usize;
                        let mut body = vec![0u8; u32_at(&h, 12) as usize];
                        if reader.read_exact(&mut body).is_err() {
                            if !abort2.load(Ordering::Relaxed) {
                                let _ = err_tx2.send(TuneError::Run("a frame was cut".into()));
                            }
                            return;
                        }
                        let at = seq as usize * params.chunk;
                        let base = baseline.as_ref().and_then(|b| b.get(at..at + raw_len));
                        let check = decode(&params, &body, raw_len, base).and_then(|raw| {
                            if crc32fast::hash(&raw) != u32_at(&h, 16) {
                                return Err(TuneError::Run(format!("chunk {seq}: CRC mismatch")));
                            }
                            if payload.get(at..at + raw_len) != Some(&raw[..]) {
                                return Err(TuneError::Run(format!(
                                    "chunk {seq}: content differs"
                                )));
                            }
                            Ok(())
                        });
                        if let Err(e) = check {
                            let _ = err_tx2.send(e);
                            return;
                        }
                        verified.fetch_add(raw_len as u64, Ordering::Relaxed);
                        if ack_tx.send((Instant::now() + rtt, seq)).is_err() {
                            return;
                        }
                    }
                }));
                let sender = Sender {
                    sock: client,
                    frames: frame_rx.clone(),
                    bottleneck: bottleneck.clone(),
                    window: link.window_bytes,
                    wire: wire.clone(),
                    abort: abort.clone(),
                    errors: err_tx.clone(),
                };
                handles.push(scope.spawn(move || sender.run()));
            }
            drop(err_tx);
            // Only the senders hold the queue's receiving end: when they stop (abort), the compressors'
            // sends fail and they stop too.
            drop(frame_rx);
            let next = Arc::new(AtomicUsize::new(0));
            let workers = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4);
            for _ in 0..workers {
                let params = params.clone();
                let (next, tx, abort) = (next.clone(), frame_tx.clone(), abort.clone());
                handles.push(scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n_chunks || abort.load(Ordering::Relaxed) {
                            return;
                        }
                        let at = i * chunk;
                        let raw = &payload[at..(at + chunk).min(payload.len())];
                        let base = baseline.as_ref().map(|b| &b[at..at + raw.len()]);
                        let Ok(body) = encode(&params, raw, base) else {
                            abort.store(true, Ordering::Relaxed);
                            return;
                        };
                        let f = Frame {
                            seq: i as u32,
                            raw_len: raw.len() as u32,
                            crc: crc32fast::hash(raw),
                            body,
                        };
                        if tx.send(f).is_err() {
                            return;
                        }
                    }
                }));
            }
            drop(frame_tx);
            // Wait for the whole payload, an error, or the timeout.
            let deadline = started + timeout;
            loop {
                if verified.load(Ordering::Relaxed) >= total {
                    return Ok(());
                }
                if let Ok(e) = err_rx.try_recv() {
                    return Err(e);
                }
                if abort.load(Ordering::Relaxed) {
                    return Err(TuneError::Run("encoding failed".into()));
                }
                if Instant::now() > deadline {
                    return Err(TuneError::Timeout(timeout.as_secs_f64()));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })();
        let seconds = started.elapsed().as_secs_f64();
        // Stop every thread; the scope joins them all before it returns.
        abort.store(true, Ordering::Relaxed);
        for s in &sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        let panicked = handles
            .into_iter()
            .map(|h| h.join())
            .filter(Result::is_err)
            .count();
        let outcome = match outcome {
            Ok(()) if panicked > 0 => Err(TuneError::Run(format!(
                "{panicked} transfer thread(s) panicked"
            ))),
            other => other,
        };
        (outcome, seconds)
    });
    outcome?;
    let cpu = cpu_seconds() - cpu0;
    let wire_bytes = wire.load(Ordering::Relaxed);
    if wire_bytes == 0 {
        return Err(TuneError::Run("nothing went over the wire".into()));
    }
    Ok(Measurement {
        goodput_bps: total as f64 * 8.0 / seconds,
        seconds,
        cpu_seconds: cpu,
        compression_ratio: total as f64 / wire_bytes as f64,
        wire_bytes,
        payload_bytes: total,
        chunks: n_chunks as u64,
    })
}

/// One stream's sending side: takes frames from the shared queue, waits for room in its window
/// and for the bottleneck, writes the frame; an ack reader frees the window.
struct Sender {
    sock: TcpStream,
    frames: Arc<Mutex<mpsc::Receiver<Frame>>>,
    bottleneck: Arc<Bottleneck>,
    window: usize,
    wire: Arc<AtomicU64>,
    abort: Arc<AtomicBool>,
    errors: mpsc::Sender<TuneError>,
}

impl Sender {
    fn run(mut self) {
        let inflight = Arc::new(Inflight {
            bytes: Mutex::new((0, HashMap::new())),
            cv: Condvar::new(),
        });
        let Ok(mut acks) = self.sock.try_clone() else {
            let _ = self
                .errors
                .send(TuneError::Run("cannot clone a socket".into()));
            return;
        };
        let inf = inflight.clone();
        let ack_reader = std::thread::spawn(move || {
            let mut b = [0u8; 4];
            while acks.read_exact(&mut b).is_ok() {
                let seq = u32::from_le_bytes(b);
                let mut g = inf.bytes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(size) = g.1.remove(&seq) {
                    g.0 -= size;
                }
                inf.cv.notify_all();
            }
            inf.cv.notify_all();
        });
        let wait = Duration::from_millis(5);
        loop {
            let next = {
                let rx = self.frames.lock().unwrap_or_else(|e| e.into_inner());
                rx.recv()
            };
            let Ok(f) = next else { break };
            let size = HEADER + f.body.len();
            {
                let mut g = inflight.bytes.lock().unwrap_or_else(|e| e.into_inner());
                while g.0 > 0 && g.0 + size > self.window && !self.abort.load(Ordering::Relaxed) {
                    g = inflight
                        .cv
                        .wait_timeout(g, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                g.0 += size;
                g.1.insert(f.seq, size);
            }
            if self.abort.load(Ordering::Relaxed) {
                break;
            }
            self.bottleneck.transmit(size);
            if write_frame(&mut self.sock, &f).is_err() {
                if !self.abort.load(Ordering::Relaxed) {
                    let _ = self.errors.send(TuneError::Run("a send failed".into()));
                }
                break;
            }
            self.wire.fetch_add(size as u64, Ordering::Relaxed);
        }
        // Everything acknowledged, then the end marker.
        {
            let mut g = inflight.bytes.lock().unwrap_or_else(|e| e.into_inner());
            while g.0 > 0 && !self.abort.load(Ordering::Relaxed) {
                g = inflight
                    .cv
                    .wait_timeout(g, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let end = Frame {
            seq: END,
            raw_len: 0,
            crc: 0,
            body: Vec::new(),
        };
        let _ = write_frame(&mut self.sock, &end);
        let _ = ack_reader.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    fn params(alg: &str, streams: usize, delta: bool) -> TransferParams {
        TransferParams {
            algorithm: alg.into(),
            level: 3,
            long_window: false,
            chunk: 256 * 1024,
            streams,
            delta,
        }
    }

    #[test]
    fn codecs_round_trip_with_and_without_delta() {
        let p = payload::generate("vm-memory", 1 << 20, 5).expect("gen");
        let b = payload::dirty(&p, 0.3, 5);
        for alg in ["zstd", "lz4", "none"] {
            for delta in [false, true] {
                let mut pr = params(alg, 1, delta);
                pr.long_window = alg == "zstd" && delta;
                let chunk = &p[..pr.chunk];
                let base = Some(&b[..pr.chunk]);
                let body = encode(&pr, chunk, base).expect("encode");
                let back = decode(&pr, &body, chunk.len(), base).expect("decode");
                assert_eq!(back, chunk, "{alg} delta={delta}");
                if delta {
                    let plain = encode(&params(alg, 1, false), chunk, base).expect("plain");
                    assert!(body.len() < plain.len(), "{alg}: delta must shrink");
                }
            }
        }
    }

    #[test]
    fn a_run_delivers_every_byte_and_streams_beat_the_window() {
        // 8 MiB over 200 Mbit/s with 40 ms RTT and a 256 KiB window: one stream is held to
        // window/RTT ≈ 52 Mbit/s, four reach ~200 Mbit/s.
        let p = payload::generate("random", 8 << 20, 1).expect("gen");
        let link = Link {
            bandwidth_bps: 200e6,
            rtt_ms: 40.0,
            window_bytes: 256 * 1024,
        };
        let t = Duration::from_secs(30);
        let one = run(&link, &params("none", 1, false), &p, None, t).expect("one");
        let four = run(&link, &params("none", 4, false), &p, None, t).expect("four");
        assert_eq!(one.payload_bytes, 8 << 20);
        assert!(one.goodput_bps < 70e6, "one stream: {}", one.goodput_bps);
        assert!(
            four.goodput_bps > 2.0 * one.goodput_bps,
            "{} vs {}",
            four.goodput_bps,
            one.goodput_bps
        );
        assert!(
            four.goodput_bps < 210e6,
            "the link caps it: {}",
            four.goodput_bps
        );
        assert!((four.compression_ratio - 1.0).abs() < 0.01);
    }

    #[test]
    fn compression_and_delta_raise_goodput_on_a_slow_link() {
        let p = payload::generate("vm-memory", 4 << 20, 2).expect("gen");
        let b = payload::dirty(&p, 0.3, 2);
        let link = Link {
            bandwidth_bps: 50e6,
            rtt_ms: 10.0,
            window_bytes: 4 << 20,
        };
        let t = Duration::from_secs(30);
        let none = run(&link, &params("none", 2, false), &p, None, t).expect("none");
        let zstd = run(&link, &params("zstd", 2, false), &p, None, t).expect("zstd");
        let delta = run(&link, &params("zstd", 2, true), &p, Some(&b), t).expect("delta");
        assert!(zstd.compression_ratio > 1.5, "{}", zstd.compression_ratio);
        assert!(zstd.goodput_bps > 1.3 * none.goodput_bps);
        assert!(delta.wire_bytes < zstd.wire_bytes);
        assert!(delta.goodput_bps > zstd.goodput_bps);
    }

    #[test]
    fn bad_input_and_timeouts_are_errors() {
        let link = scenario("wan-100m").expect("scenario").link;
        let p = payload::generate("random", 4 << 20, 1).expect("gen");
        // 4 MiB at 100 Mbit/s needs ~0.34 s: a 50 ms budget must time out, cleanly.
        let e = run(
            &link,
            &params("none", 1, false),
            &p,
            None,
            Duration::from_millis(50),
        )
        .expect_err("timeout");
        assert!(matches!(e, TuneError::Timeout(_)), "{e}");
        assert!(
            run(
                &link,
                &params("none", 1, false),
                &[],
                None,
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(scenario("moon-link").is_err());
        let sp = space();
        let e = sp
            .validate(&serde_json::json!({"chunk_kib": 66}))
            .expect_err("not whole pages");
        assert!(e.to_string().contains("multiple of 4"), "{e}");
        assert!(sp.validate(&serde_json::json!({"streams": 0})).is_err());
    }
}
