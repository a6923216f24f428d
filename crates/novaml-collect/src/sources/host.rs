//! This machine's CPU, memory, load, disk and network from `/proc`, as gauges ready for models
//! (utilisation in percent, throughput in bytes per second) rather than raw counters.
//!
//! Rates need two readings: the first collection reports memory and load only, later ones add
//! CPU, disk and network computed over the time between readings.

use std::collections::HashMap;

use novaml_core::{
    BoxFuture, CollectContext, Collected, Point, Series, SeriesKey, Source, SourceError, Timestamp,
};
use procfs::{Current, CurrentSI};

use serde::Deserialize;

use crate::sources::Configured;
use crate::{CollectError, ScheduleSection};

#[derive(Debug, Clone, Default)]
struct Snapshot {
    ts: Timestamp,
    /// Per CPU (`None` = all): (busy ticks, total ticks).
    cpu: HashMap<Option<usize>, (u64, u64)>,
    /// Per disk: (bytes read, bytes written).
    disk: HashMap<String, (u64, u64)>,
    /// Per interface: (bytes received, bytes sent).
    net: HashMap<String, (u64, u64)>,
}

/// `[sources.host]` of the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Collect this host.
    #[serde(default = "crate::sources::enabled")]
    pub enabled: bool,
    /// Interval, timeout, retries.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

impl HostSection {
    /// This host every `interval`.
    pub fn every(interval: &str) -> Self {
        Self {
            enabled: true,
            schedule: ScheduleSection::every(interval),
        }
    }

    /// Checks the section at `field` and builds the source.
    pub fn resolve(&self, field: &str) -> Result<Configured, CollectError> {
        Ok(Configured {
            source: Box::new(Host::new("host")),
            schedule: self.schedule.resolve(field)?,
            kind: "host",
            simulated: false,
        })
    }
}

/// The host source.
#[derive(Debug)]
pub struct Host {
    name: String,
    host: String,
    prev: Option<Snapshot>,
}

impl Host {
    /// A host source named `name`; series carry `host="<hostname>"`.
    pub fn new(name: impl Into<String>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            name: name.into(),
            host,
            prev: None,
        }
    }

    fn key(&self, name: &str, extra: Option<(&str, &str)>) -> SeriesKey {
        let mut key = SeriesKey {
            name: name.to_owned(),
            labels: Default::default(),
        };
        key.labels.insert("host".into(), self.host.clone());
        if let Some((k, v)) = extra {
            key.labels.insert(k.into(), v.into());
        }
        key
    }

    fn read(&mut self, now: Timestamp) -> Result<Collected, CollectError> {
        let mut out = Vec::new();
        let mut push = |key: SeriesKey, v: f64| {
            if v.is_finite() {
                out.push(Series::new(key, vec![Point::new(now, v)]));
            }
        };
        let mem = procfs::Meminfo::current()?;
        let total = mem.mem_total as f64;
        let available = mem.mem_available.unwrap_or(mem.mem_free) as f64;
        push(self.key("host_memory_total_bytes", None), total);
        push(self.key("host_memory_available_bytes", None), available);
        if total > 0.0 {
            push(
                self.key("host_memory_used_percent", None),
                100.0 * (total - available) / total,
            );
        }
        let load = procfs::LoadAverage::current()?;
        push(self.key("host_load1", None), f64::from(load.one));
        push(self.key("host_load5", None), f64::from(load.five));

        let stat = procfs::KernelStats::current()?;
        let ticks = |c: &procfs::CpuTime| {
            let idle = c.idle + c.iowait.unwrap_or(0);
            let total = c.user
                + c.nice
                + c.system
                + idle
                + c.irq.unwrap_or(0)
                + c.softirq.unwrap_or(0)
                + c.steal.unwrap_or(0);
            (total - idle, total)
        };
        let mut snap = Snapshot {
            ts: now,
            ..Snapshot::default()
        };
        snap.cpu.insert(None, ticks(&stat.total));
        for (i, c) in stat.cpu_time.iter().enumerate() {
            snap.cpu.insert(Some(i), ticks(c));
        }
        for d in procfs::diskstats()? {
            // Whole disks only (partitions double-count); loop and ram devices are noise.
            if d.name.starts_with("loop") || d.name.starts_with("ram") || is_partition(&d.name) {
                continue;
            }
            // /proc/diskstats counts 512-byte sectors whatever the device's sector size.
            snap.disk.insert(
                d.name.clone(),
                (d.sectors_read * 512, d.sectors_written * 512),
            );
        }
        for (name, dev) in procfs::net::dev_status()? {
            if name == "lo" {
                continue;
            }
            snap.net.insert(name, (dev.recv_bytes, dev.sent_bytes));
        }

        if let Some(prev) = &self.prev {
            let dt = (now - prev.ts) as f64 / 1000.0;
            if dt > 0.0 {
                for (cpu, &(busy, total)) in &snap.cpu {
                    if let Some(&(pb, pt)) = prev.cpu.get(cpu)
                        && total > pt
                    {
                        let pct = 100.0 * busy.saturating_sub(pb) as f64 / (total - pt) as f64;
                        let label = cpu.map(|c| c.to_string());
                        push(
                            self.key(
                                "host_cpu_usage_percent",
                                label.as_deref().map(|c| ("cpu", c)),
                            ),
                            pct,
                        );
                    }
                }
                let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
                for (dev, &(r, w)) in &snap.disk {
                    if let Some(&(pr, pw)) = prev.disk.get(dev) {
                        push(
                            self.key("host_disk_read_bytes_per_second", Some(("device", dev))),
                            rate(r, pr),
                        );
                        push(
                            self.key("host_disk_write_bytes_per_second", Some(("device", dev))),
                            rate(w, pw),
                        );
                    }
                }
                for (dev, &(rx, tx)) in &snap.net {
                    if let Some(&(prx, ptx)) = prev.net.get(dev) {
                        push(
                            self.key(
                                "host_network_receive_bytes_per_second",
                                Some(("device", dev)),
                            ),
                            rate(rx, prx),
                        );
                        push(
                            self.key(
                                "host_network_transmit_bytes_per_second",
                                Some(("device", dev)),
                            ),
                            rate(tx, ptx),
                        );
                    }
                }
            }
        }
        self.prev = Some(snap);
        Ok(Collected {
            series: out,
            skipped: vec![],
            more: false,
        })
    }
}

/// `sda1`, `nvme0n1p2`, `vda3` are partitions; `sda`, `nvme0n1`, `vda`, `dm-0` are not.
fn is_partition(name: &str) -> bool {
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        return name.rsplit_once('p').is_some_and(|(head, tail)| {
            head.ends_with(|c: char| c.is_ascii_digit())
                && !tail.is_empty()
                && tail.bytes().all(|b| b.is_ascii_digit())
        });
    }
    if name.starts_with("dm-") || name.starts_with("md") {
        return false;
    }
    name.ends_with(|c: char| c.is_ascii_digit())
}

impl Source for Host {
    fn name(&self) -> &str {
        &self.name
    }

    fn collect<'a>(
        &'a mut self,
        ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        // Reading /proc takes microseconds: no need for a blocking thread.
        Box::pin(async move {
            self.read(ctx.now)
                .map_err(|e| SourceError::Transient(Box::new(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_told_from_disks() {
        for (name, part) in [
            ("sda", false),
            ("sda1", true),
            ("vda", false),
            ("vda3", true),
            ("nvme0n1", false),
            ("nvme0n1p2", true),
            ("dm-0", false),
            ("mmcblk0", false),
            ("mmcblk0p1", true),
        ] {
            assert_eq!(is_partition(name), part, "{name}");
        }
    }

    #[test]
    fn reads_this_host_and_computes_rates_on_the_second_reading() {
        let mut h = Host::new("host");
        let first = h.read(1_000).expect("first read");
        let names: Vec<&str> = first.series.iter().map(|s| s.key.name.as_str()).collect();
        assert!(names.contains(&"host_memory_used_percent"), "{names:?}");
        assert!(
            !names.contains(&"host_cpu_usage_percent"),
            "no rate from one reading"
        );
        // Burn some CPU so the tick counters move.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let second = h.read(2_000).expect("second read");
        let cpu: Vec<f64> = second
            .series
            .iter()
            .filter(|s| s.key.name == "host_cpu_usage_percent" && !s.key.labels.contains_key("cpu"))
            .map(|s| s.points[0].value)
            .collect();
        assert_eq!(cpu.len(), 1);
        assert!((0.0..=100.0).contains(&cpu[0]), "{cpu:?}");
        let mem = second
            .series
            .iter()
            .find(|s| s.key.name == "host_memory_used_percent")
            .expect("memory");
        assert!((0.0..=100.0).contains(&mem.points[0].value));
    }
}
