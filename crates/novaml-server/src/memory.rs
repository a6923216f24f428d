//! The process's memory, for `/metrics`: where the resident memory goes, so that a growing
//! process can be told apart from a fragmented heap without a profiler.
//!
//! - `process_resident_memory_bytes`: resident set (`/proc/self/statm`), the figure an operator
//!   and the OOM killer see;
//! - `novaml_heap_in_use_bytes`: bytes the program holds from the allocator (glibc's
//!   `mallinfo2`: in-use blocks of every arena plus its mmapped blocks);
//! - `novaml_heap_free_bytes`: bytes freed by the program that sit in the allocator's free
//!   lists (fast bins included), resident or not: a trim gives their pages back to the system
//!   but leaves them listed, so this figure bounds what fragmentation can hold, and resident
//!   minus in use says what it holds now.
//!
//! - `novaml_heap_released_bytes_total`: resident memory given back by [`keep_releasing`].
//!
//! In use growing means the program holds more (a cache, a history, a leak); resident growing
//! with in use flat means fragmentation. The heap figures exist on Linux with glibc only (elsewhere
//! they are not registered).
//!
//! [`keep_releasing`] is the cure for the second: the soak of 2026-12-06 (`bench/soak.sh`)
//! showed `novaml demo` at 83 MB resident with 5 MB in use and 63 MB free in glibc's arenas:
//! memory freed in the middle of the per-thread heaps, which glibc returns only when asked
//! (`malloc_trim`). One `malloc_trim(0)` took that process from 85 to 33 MB.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

/// Resident bytes given back by [`keep_releasing`] (on `/metrics`).
pub(crate) static RELEASED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Free heap above which [`keep_releasing`] trims: below it a trim gains too little to matter.
const TRIM_ABOVE: u64 = 8 << 20;

/// Starts a thread that, every `period`, gives the heap's free memory back to the system when
/// over 8 MiB of it is listed free (glibc's `malloc_trim`, which returns the free pages inside
/// every arena, not only at their tops; pages already given back cost it one `madvise` each). Does nothing where the heap figures do not exist (not glibc). For the
/// long-running commands (`demo`, `serve`, `collect`).
pub fn keep_releasing(period: Duration) {
    if !HEAP_FIGURES {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("memory-release".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                release_if_worth_it();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "Cannot start the memory-release thread; freed memory may stay resident.");
    }
}

/// One round of [`keep_releasing`]; returns the resident bytes given back.
pub fn release_if_worth_it() -> u64 {
    let before = sample();
    if before.heap_free.unwrap_or(0) <= TRIM_ABOVE {
        return 0;
    }
    trim();
    let released = before
        .resident
        .zip(resident())
        .map_or(0, |(b, a)| b.saturating_sub(a));
    RELEASED.inc_by(released);
    released
}

/// One sample of the process's memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// Resident set size.
    pub resident: Option<u64>,
    /// Held by the program (glibc only).
    pub heap_in_use: Option<u64>,
    /// Freed but kept by the allocator (glibc only).
    pub heap_free: Option<u64>,
}

/// Samples the process's memory now.
pub fn sample() -> MemorySample {
    let (heap_in_use, heap_free) = heap();
    MemorySample {
        resident: resident(),
        heap_in_use,
        heap_free,
    }
}

/// Whether this build can report the heap figures.
pub(crate) const HEAP_FIGURES: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Resident set size from `/proc/self/statm` (its second field, in pages; Linux pages are
/// 4 KiB on every platform we build for: x86-64 and aarch64 with 4 KiB pages).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4_096)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> (Option<u64>, Option<u64>) {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value; it locks each
    // arena while it reads it, so it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    let in_use = info.uordblks as u64 + info.hblkhd as u64;
    let free = info.fordblks as u64 + info.fsmblks as u64;
    (Some(in_use), Some(free))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> (Option<u64>, Option<u64>) {
    (None, None)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the padding to leave and returns a flag; it takes each arena's
    // lock while it works, so it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    /// The two tests measure the whole process: one at a time.
    static ALONE: Mutex<()> = Mutex::new(());

    #[test]
    fn a_large_live_allocation_is_counted_in_use_and_resident() {
        let _alone = ALONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = super::sample();
        let Some(resident) = before.resident else {
            return; // not Linux
        };
        assert!(resident > 1 << 20, "resident {resident} B");
        // 256 MiB held and touched: seen in use (glibc) and resident. (The other tests of this
        // crate hold far less, so what they free meanwhile cannot hide it.)
        let held = vec![1u8; 256 << 20];
        let during = super::sample();
        assert!(during.resident.unwrap_or(0) >= resident + (200 << 20));
        if let (Some(a), Some(b)) = (before.heap_in_use, during.heap_in_use) {
            assert!(b >= a + (200 << 20), "in use {a} -> {b}");
        }
        assert_eq!(held.iter().map(|&b| u64::from(b)).sum::<u64>(), 256 << 20);
    }

    #[test]
    fn freed_small_blocks_kept_by_the_allocator_are_given_back() {
        if !super::HEAP_FIGURES {
            return;
        }
        let _alone = ALONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // 64 MiB in 64 KiB blocks (under the mmap threshold: they live in the heap), then all
        // freed but the last, which pins the heap's top so that glibc cannot shrink it by
        // itself: the free memory stays resident until it is trimmed.
        let mut blocks: Vec<Vec<u8>> = (0..1_024).map(|i| vec![i as u8; 64 << 10]).collect();
        let pin = blocks.pop();
        drop(blocks);
        let free = super::sample().heap_free.unwrap_or(0);
        assert!(free >= 48 << 20, "free {free} B");
        let released = super::release_if_worth_it();
        assert!(released >= 32 << 20, "released {released} B");
        assert!(super::RELEASED.get() >= released);
        assert_eq!(pin.map(|b| b.len()), Some(64 << 10));
    }
}
