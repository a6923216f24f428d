//! End-to-end tests of the `novaml` binary against real services: a real Prometheus and a real
//! node_exporter (Debian packages, started here on free loopback ports).

mod cli;
mod demo;
mod deploy;
mod env;
mod grafana;
mod predict;
mod prometheus;
mod serve;
mod tune;
