//! The cgroup files' text in both forms: limits, keyed counters, `cpu.max`,
//! `/proc/PID/cgroup`. Pure, so the parsers are unit-tested without a host.

use super::*;

/// Serializes as the number, or "max" when unlimited.
impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Max => s.serialize_str("max"),
            Limit::Value(n) => s.serialize_u64(*n),
        }
    }
}

/// A memory or pids limit: a number, or unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Unlimited: `max`, or v1's page-rounded huge number.
    Max,
    /// A limit in the file's unit (bytes for memory, tasks for pids).
    Value(u64),
}

/// What v1 memory files read for "unlimited": PAGE_COUNTER_MAX pages
/// (LONG_MAX / PAGE_SIZE) in bytes, 9223372036854771712 with 4 KiB pages.
pub fn v1_memory_unlimited(page: u64) -> u64 {
    (i64::MAX as u64 / page) * page
}

/// What the kernel stores for a byte limit: whole pages, rounded down.
pub fn page_rounded(bytes: u64, page: u64) -> u64 {
    bytes / page * page
}

impl Limit {
    /// The text to write to a memory limit file.
    pub fn memory_text(self, v: Version) -> String {
        match (self, v) {
            (Limit::Max, Version::V1) => "-1".into(),
            (Limit::Max, Version::V2) => "max".into(),
            (Limit::Value(n), _) => n.to_string(),
        }
    }

    /// Parses a memory limit file as read back.
    pub fn parse_memory(text: &str, v: Version, page: u64) -> Option<Limit> {
        let t = text.trim();
        match v {
            Version::V2 if t == "max" => Some(Limit::Max),
            _ => {
                let n: u64 = t.parse().ok()?;
                if v == Version::V1 && n >= v1_memory_unlimited(page) {
                    Some(Limit::Max)
                } else {
                    Some(Limit::Value(n))
                }
            }
        }
    }

    /// `pids.max` reads and writes "max" in both versions.
    pub fn pids_text(self) -> String {
        match self {
            Limit::Max => "max".into(),
            Limit::Value(n) => n.to_string(),
        }
    }

    /// Reads `pids.max`: `max` or a count; None for anything else.
    pub fn parse_pids(text: &str) -> Option<Limit> {
        match text.trim() {
            "max" => Some(Limit::Max),
            t => t.parse().ok().map(Limit::Value),
        }
    }
}

/// Flat keyed files: `key value` lines (v2 `memory.events`, `pids.events`,
/// `cpu.stat`; v1 `memory.oom_control`, `pids.events`, `cpu.stat`).
pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let k = w.next()?;
            let v = w.next()?.parse().ok()?;
            w.next().is_none().then(|| (k.to_string(), v))
        })
        .collect()
}

/// `cpu.max` (v2): "QUOTA PERIOD" with QUOTA "max" when unlimited.
pub fn format_cpu_max(quota_us: Option<u64>, period_us: u64) -> String {
    match quota_us {
        Some(q) => format!("{q} {period_us}"),
        None => format!("max {period_us}"),
    }
}

/// Reads v2 `cpu.max` as `(quota_us, period_us)`, quota None for `max`; None if malformed.
pub fn parse_cpu_max(text: &str) -> Option<(Option<u64>, u64)> {
    let mut w = text.split_whitespace();
    let q = match w.next()? {
        "max" => None,
        n => Some(n.parse().ok()?),
    };
    let p = w.next()?.parse().ok()?;
    w.next().is_none().then_some((q, p))
}

/// The path of `controller`'s group in a `/proc/<pid>/cgroup` text: the v1
/// line naming the controller, or the v2 `0::` line.
pub fn proc_cgroup_path(text: &str, controller: &str, v: Version) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match v {
            Version::V2 => id == "0" && ctrls.is_empty(),
            Version::V1 => ctrls.split(',').any(|c| c == controller),
        };
        hit.then(|| path.to_string())
    })
}

/// Memory counters in either form. v1-only and v2-only fields are `None`
/// where the host's form has no such file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryCounters {
    /// v1 `memory.oom_control oom_kill` / v2 `memory.events oom_kill`.
    pub oom_kill: u64,
    /// v2 `memory.events oom` / v1: `under_oom` is a state, not a count.
    pub oom: Option<u64>,
    /// v2 `memory.events max`: times usage hit the limit.
    pub max_events: Option<u64>,
    /// v1 `memory.failcnt`.
    pub failcnt: Option<u64>,
    /// v1 `memory.memsw.failcnt`.
    pub memsw_failcnt: Option<u64>,
    /// v1 `memory.max_usage_in_bytes` / v2 `memory.peak` (5.19+).
    pub peak: Option<u64>,
}

/// CPU controller statistics in either form.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuStat {
    /// Enforcement periods that have elapsed while the group had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the group used its whole quota and was throttled.
    pub nr_throttled: u64,
    /// v1 `throttled_time` (ns) / v2 `throttled_usec`, both as microseconds.
    pub throttled_usec: u64,
}

impl CpuStat {
    /// Reads `cpu.stat` of either version; None when a field the rows need is missing.
    pub fn parse(text: &str, v: Version) -> Option<CpuStat> {
        let m = parse_keyed(text);
        let throttled_usec = match v {
            Version::V1 => *m.get("throttled_time")? / 1000,
            Version::V2 => *m.get("throttled_usec")?,
        };
        Some(CpuStat {
            nr_periods: *m.get("nr_periods")?,
            nr_throttled: *m.get("nr_throttled")?,
            throttled_usec,
        })
    }
}

/// The file names of each form, in one place.
pub fn memory_limit_file(v: Version) -> &'static str {
    match v {
        Version::V1 => "memory.limit_in_bytes",
        Version::V2 => "memory.max",
    }
}
