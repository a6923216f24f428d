//! Tuning novaml's platform on a real, measured system.
//!
//! - [`space`]: parameters, bounds and validated configurations.
//! - [`transfer`]: the HDE/AMST transfer engine as an environment: a payload sent over N
//!   parallel TCP streams on loopback through an emulated link (bandwidth, RTT, per-stream
//!   window), chunked, compressed (zstd with optional long window, lz4, none), optionally
//!   delta-encoded against a baseline, verified at the receiver; one run measures goodput, CPU
//!   seconds, compression ratio and bytes on the wire.

mod error;

pub mod payload;
pub mod space;
pub mod transfer;

pub use error::TuneError;
