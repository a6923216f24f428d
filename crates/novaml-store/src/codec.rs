//! Binary encodings of the store's blobs (little-endian, no unsafe):
//!
//! - a head record: the points of one write, `(series_id i64, ts i64, value f64)` × n;
//! - a chunk: the points of one series, `(ts i64, value f64)` × n, sorted by `ts`.
//!
//! Fixed-width fields rather than a compressed format: decoding is a plain copy, which keeps
//! reading 1M points far under the 200 ms target; compression (delta-of-delta, Gorilla XOR) can
//! come later behind the same functions if disk size matters.

use novaml_core::Point;

/// Bytes per head entry.
const HEAD_ENTRY: usize = 24;
/// Bytes per chunk point.
const CHUNK_POINT: usize = 16;

/// Encodes head entries.
pub(crate) fn encode_head(rows: &[(i64, i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * HEAD_ENTRY);
    for (id, ts, v) in rows {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

/// Decodes head entries; `None` if the blob's length is not a whole number of entries.
pub(crate) fn decode_head(blob: &[u8]) -> Option<impl Iterator<Item = (i64, i64, f64)> + '_> {
    blob.len().is_multiple_of(HEAD_ENTRY).then(|| {
        blob.chunks_exact(HEAD_ENTRY).map(|e| {
            (
                i64::from_le_bytes(le8(&e[0..8])),
                i64::from_le_bytes(le8(&e[8..16])),
                f64::from_le_bytes(le8(&e[16..24])),
            )
        })
    })
}

/// Encodes sorted points of one series.
pub(crate) fn encode_chunk(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * CHUNK_POINT);
    for p in points {
        out.extend_from_slice(&p.ts.to_le_bytes());
        out.extend_from_slice(&p.value.to_le_bytes());
    }
    out
}

/// Decodes a chunk, appending to `out`; `false` if the blob is malformed.
pub(crate) fn decode_chunk(blob: &[u8], out: &mut Vec<Point>) -> bool {
    if !blob.len().is_multiple_of(CHUNK_POINT) {
        return false;
    }
    out.reserve(blob.len() / CHUNK_POINT);
    out.extend(blob.chunks_exact(CHUNK_POINT).map(|e| {
        Point::new(
            i64::from_le_bytes(le8(&e[0..8])),
            f64::from_le_bytes(le8(&e[8..16])),
        )
    }));
    true
}

/// Merges two sorted point lists; on equal timestamps `newer` wins.
pub(crate) fn merge(older: Vec<Point>, newer: Vec<Point>) -> Vec<Point> {
    if older.is_empty() {
        return newer;
    }
    if newer.is_empty() {
        return older;
    }
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut a, mut b) = (older.into_iter().peekable(), newer.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.ts < y.ts => out.extend(a.next()),
            (Some(x), Some(y)) if x.ts == y.ts => {
                a.next();
                out.extend(b.next());
            }
            (_, Some(_)) => out.extend(b.next()),
            (Some(_), None) => out.extend(a.next()),
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncated_blobs() {
        let rows = [(1, -5, 1.5), (i64::MAX, i64::MIN, f64::MAX)];
        let blob = encode_head(&rows);
        assert_eq!(decode_head(&blob).expect("valid").collect::<Vec<_>>(), rows);
        assert!(decode_head(&blob[..10]).is_none());
        let pts = [Point::new(1, 0.25), Point::new(2, -1e300)];
        let mut out = Vec::new();
        assert!(decode_chunk(&encode_chunk(&pts), &mut out));
        assert_eq!(out, pts);
        assert!(!decode_chunk(&[0u8; 7], &mut out));
    }

    #[test]
    fn merge_prefers_newer_on_ties() {
        let p = |v: &[(i64, f64)]| v.iter().map(|&(t, x)| Point::new(t, x)).collect::<Vec<_>>();
        let got = merge(
            p(&[(1, 1.0), (3, 3.0), (5, 5.0)]),
            p(&[(2, 20.0), (3, 30.0), (6, 60.0)]),
        );
        assert_eq!(
            got,
            p(&[(1, 1.0), (2, 20.0), (3, 30.0), (5, 5.0), (6, 60.0)])
        );
    }
}
