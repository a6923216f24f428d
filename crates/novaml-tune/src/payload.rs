//! Reproducible VM-like payloads and baselines for the transfer engine.
//!
//! A VM's memory or disk is a mix of page kinds with very different compressibility: zero pages,
//! text (logs, configs, source), structured records (tables, heaps with repeated layouts), data
//! that is already compressed (packages, media) and random-looking data (encrypted or hashed).
//! [`generate`] builds such a mix page by page from a seed, so every run of a trial sends the
//! same bytes. [`dirty`] makes the next "round" of a live migration: the same payload with a
//! share of its pages rewritten, which delta encoding against the previous round can skip.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::TuneError;

/// Page size, bytes.
pub const PAGE: usize = 4096;

/// The payload kinds.
pub const KINDS: [&str; 4] = ["vm-memory", "text", "random", "vm-image"];

const WORDS: [&str; 48] = [
    "the",
    "kernel",
    "request",
    "error",
    "warning",
    "info",
    "debug",
    "user",
    "session",
    "timeout",
    "connection",
    "server",
    "client",
    "migration",
    "page",
    "memory",
    "disk",
    "network",
    "latency",
    "throughput",
    "GET",
    "POST",
    "/api/v1/items",
    "200",
    "404",
    "500",
    "json",
    "value",
    "id",
    "name",
    "status",
    "ok",
    "failed",
    "retry",
    "backoff",
    "queue",
    "worker",
    "thread",
    "lock",
    "commit",
    "transaction",
    "index",
    "table",
    "select",
    "from",
    "where",
    "and",
    "=",
];

fn text_page(rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let start = out.len();
    while out.len() - start < PAGE {
        let w = WORDS[rng.random_range(0..WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.random_range(0..12) == 0 {
            b'\n'
        } else {
            b' '
        });
        if rng.random_range(0..20) == 0 {
            out.extend_from_slice(rng.random_range(0..100_000u32).to_string().as_bytes());
            out.push(b' ');
        }
    }
    out.truncate(start + PAGE);
}

fn record_page(rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    // 64-byte records: a fixed header, a small counter, a few varying fields.
    let base: u32 = rng.random();
    for i in 0..(PAGE / 64) as u32 {
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"RECORDv1");
        rec[8..12].copy_from_slice(&(base.wrapping_add(i)).to_le_bytes());
        rec[12..16].copy_from_slice(&(rng.random_range(0..1000u32)).to_le_bytes());
        rec[16] = rng.random_range(0..4);
        out.extend_from_slice(&rec);
    }
}

/// Generates `bytes` (rounded up to whole pages) of payload `kind`, reproducibly from `seed`.
pub fn generate(kind: &str, bytes: usize, seed: u64) -> Result<Vec<u8>, TuneError> {
    // Shares of zero, text, record, compressed, random pages.
    let mix: [u32; 5] = match kind {
        "vm-memory" => [30, 25, 20, 10, 15],
        "text" => [0, 100, 0, 0, 0],
        "random" => [0, 0, 0, 0, 100],
        "vm-image" => [55, 15, 5, 20, 5],
        _ => {
            return Err(TuneError::Unknown {
                what: "payload",
                name: kind.into(),
                known: KINDS.join(", "),
            });
        }
    };
    let pages = bytes.div_ceil(PAGE);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Already-compressed pages: zstd output of text, cut into pages.
    let mut packed = Vec::new();
    if mix[3] > 0 {
        let mut t = Vec::with_capacity(64 * PAGE);
        for _ in 0..64 {
            text_page(&mut rng, &mut t);
        }
        packed = zstd::bulk::compress(&t, 19).map_err(|e| TuneError::Run(e.to_string()))?;
    }
    let mut out = Vec::with_capacity(pages * PAGE);
    let total: u32 = mix.iter().sum();
    // Runs of the same kind, as memory has (a heap, a page cache, free pages).
    let mut kind_left = 0usize;
    let mut current = 0usize;
    for _ in 0..pages {
        if kind_left == 0 {
            let mut r = rng.random_range(0..total);
            current = mix
                .iter()
                .position(|&m| {
                    if r < m {
                        true
                    } else {
                        r -= m;
                        false
                    }
                })
                .unwrap_or(0);
            kind_left = rng.random_range(1..16);
        }
        kind_left -= 1;
        match current {
            0 => out.resize(out.len() + PAGE, 0),
            1 => text_page(&mut rng, &mut out),
            2 => record_page(&mut rng, &mut out),
            3 => {
                let at = rng.random_range(0..packed.len().saturating_sub(PAGE).max(1));
                let end = (at + PAGE).min(packed.len());
                out.extend_from_slice(&packed[at..end]);
                out.resize(out.len() + PAGE - (end - at), 0x5a);
            }
            _ => {
                let start = out.len();
                out.resize(start + PAGE, 0);
                rng.fill_bytes(&mut out[start..]);
            }
        }
    }
    Ok(out)
}

/// The previous round of `payload`: a copy in which a `share` of the pages differ (rewritten
/// with random bytes), reproducibly from `seed`. Sending `payload` with delta encoding against
/// it skips the pages that did not change.
pub fn dirty(payload: &[u8], share: f64, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd1e7);
    let mut base = payload.to_vec();
    for page in base.chunks_mut(PAGE) {
        if rng.random_bool(share.clamp(0.0, 1.0)) {
            rng.fill_bytes(page);
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_reproducible_and_differ_in_compressibility() {
        let a = generate("vm-memory", 1 << 20, 1).expect("gen");
        assert_eq!(a, generate("vm-memory", 1 << 20, 1).expect("gen"));
        assert_ne!(a, generate("vm-memory", 1 << 20, 2).expect("gen"));
        assert_eq!(a.len(), 1 << 20);
        let ratio = |k: &str| {
            let p = generate(k, 8 << 20, 1).expect("gen");
            p.len() as f64 / zstd::bulk::compress(&p, 3).expect("zstd").len() as f64
        };
        let (t, r, m) = (ratio("text"), ratio("random"), ratio("vm-memory"));
        assert!(t > 3.0, "text {t}");
        assert!(r < 1.01, "random {r}");
        // Mostly compressible, but the random and already-compressed pages (a quarter) cap it.
        assert!((1.5..5.0).contains(&m), "vm-memory {m}");
        assert!(generate("floppy", 10, 1).is_err());
    }

    #[test]
    fn dirty_changes_about_the_share() {
        let p = generate("vm-memory", 4 << 20, 3).expect("gen");
        let b = dirty(&p, 0.2, 3);
        let changed = p
            .chunks(PAGE)
            .zip(b.chunks(PAGE))
            .filter(|(x, y)| x != y)
            .count() as f64
            / (p.len() / PAGE) as f64;
        assert!((0.15..0.25).contains(&changed), "{changed}");
    }
}
