//! Integration tests of collection: the runner against failing and hanging servers and a failing
//! store, and the exposition parser on real node_exporter output and random input.

mod exposition;
mod file_import;
mod runner;
