//! One interface over cgroup v1 and v2 for the memory, pids and cpu
//! controllers: create a group, set a limit, add a process, read counters,
//! delete. Each call speaks the host's own form (v1 `memory.limit_in_bytes`,
//! `memory.oom_control`, `cpu.cfs_quota_us`; v2 `memory.max`,
//! `memory.events`, `cpu.max`), so an experiment asserts what the host has.
//!
//! The layout comes from `HostFacts` (probed once); on a hybrid host each
//! controller is used where it is bound: a controller the v2 root offers is
//! used there, any other on its v1 mount.
//!
//! The suite's groups live under `<hierarchy>/isocheck/<run-unique name>`,
//! where `cleanup` finds them. The `isocheck` parent is shared by parallel
//! experiments and removed at the end of the run (or by a leak cleanup), so
//! creating a child retries when the parent vanished in between.

use crate::host::{CgroupLayout, HostFacts};
use crate::needs::Controller;
use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const SUITE_PARENT: &str = "isocheck";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// Where one controller lives on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub controller: Controller,
    pub version: Version,
    pub root: PathBuf,
}

impl Hierarchy {
    /// The host's hierarchy for `ctrl`, if it has the controller.
    pub fn of(ctrl: Controller) -> Option<Hierarchy> {
        Self::from_layout(&HostFacts::get().cgroup, ctrl)
    }

    pub fn from_layout(layout: &CgroupLayout, ctrl: Controller) -> Option<Hierarchy> {
        let name = ctrl.name();
        if let Some(root) = layout
            .v2_mount
            .as_ref()
            .filter(|_| layout.v2.iter().any(|c| c == name))
        {
            return Some(Hierarchy {
                controller: ctrl,
                version: Version::V2,
                root: root.clone(),
            });
        }
        layout.v1_mounts.get(name).map(|root| Hierarchy {
            controller: ctrl,
            version: Version::V1,
            root: root.clone(),
        })
    }

    /// `Hierarchy::of`, or why not (an experiment reports it as an unmet
    /// need: `.map_err(Problem::Unmet)`).
    pub fn require(ctrl: Controller) -> Result<Hierarchy, String> {
        Self::of(ctrl).ok_or_else(|| format!("no {} controller here", ctrl.name()))
    }

    /// Why groups cannot use the controller here: on v2 the root must
    /// delegate it (`cgroup.subtree_control`), and that file is the host's.
    pub fn delegation_unmet(&self) -> Option<String> {
        if self.version == Version::V1 {
            return None;
        }
        let ctrl = self.controller.name();
        let sub = std::fs::read_to_string(self.root.join("cgroup.subtree_control")).ok()?;
        (!sub.split_whitespace().any(|c| c == ctrl)).then(|| {
            format!(
                "the cgroup v2 root {} does not enable {ctrl} for its children (cgroup.subtree_control: {:?}); the suite does not change the host's root",
                self.root.display(),
                sub.trim()
            )
        })
    }

    pub fn parent(&self) -> PathBuf {
        self.root.join(SUITE_PARENT)
    }

    /// Makes `<root>/isocheck`; on v2 also delegates the controller to its
    /// children. The root's own `subtree_control` belongs to the host: when
    /// it does not enable the controller, that is an unmet need, not ours to
    /// change.
    pub fn ensure_parent(&self) -> anyhow::Result<PathBuf> {
        let p = self.parent();
        match std::fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(anyhow!("mkdir {}: {e}", p.display())),
        }
        if self.version == Version::V2 {
            let ctrl = self.controller.name();
            let root_sub = crate::process::read(self.root.join("cgroup.subtree_control"))?;
            if !root_sub.split_whitespace().any(|c| c == ctrl) {
                return Err(anyhow!(
                    "the v2 root does not delegate {ctrl} (cgroup.subtree_control: {:?})",
                    root_sub.trim()
                ));
            }
            std::fs::write(p.join("cgroup.subtree_control"), format!("+{ctrl}"))
                .with_context(|| format!("enabling {ctrl} under {}", p.display()))?;
        }
        Ok(p)
    }

    /// The group's path as libcgroup takes it and `/proc/<pid>/cgroup`
    /// shows it (relative to the hierarchy root).
    pub fn relative(&self, name: &str) -> String {
        format!("{SUITE_PARENT}/{name}")
    }

    /// `controller:path` for `cgcreate -g` / `cgexec -g` / `cgdelete`.
    pub fn spec(&self, name: &str) -> String {
        format!("{}:{}", self.controller.name(), self.relative(name))
    }

    /// The group named `name` under the suite's parent (it may not exist).
    pub fn group(&self, name: &str) -> Group {
        Group {
            hier: self.clone(),
            name: name.to_string(),
            path: self.parent().join(name),
        }
    }

    /// The suite's parent itself (`<root>/isocheck`), to tune it.
    pub fn parent_group(&self) -> Group {
        Group {
            hier: self.clone(),
            name: String::new(),
            path: self.parent(),
        }
    }

    /// mkdir of a new group, retrying while parallel experiments race on
    /// the shared parent (it may vanish between our mkdir calls).
    pub fn create(&self, name: &str) -> anyhow::Result<Group> {
        let g = self.group(name);
        let mut last = None;
        for _ in 0..50 {
            self.ensure_parent()?;
            match std::fs::create_dir(&g.path) {
                Ok(()) => return Ok(g),
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(e),
                Err(e) => return Err(anyhow!("mkdir {}: {e}", g.path.display())),
            }
        }
        Err(anyhow!(
            "mkdir {}: parent kept vanishing: {last:?}",
            g.path.display()
        ))
    }
}

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
    Max,
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
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// v1 `throttled_time` (ns) / v2 `throttled_usec`, both as microseconds.
    pub throttled_usec: u64,
}

impl CpuStat {
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

/// One group in one hierarchy.
#[derive(Clone, Debug)]
pub struct Group {
    pub hier: Hierarchy,
    pub name: String,
    pub path: PathBuf,
}

fn page() -> u64 {
    HostFacts::get().page_size
}

impl Group {
    pub fn version(&self) -> Version {
        self.hier.version
    }

    pub fn file(&self, f: &str) -> PathBuf {
        self.path.join(f)
    }

    pub fn has(&self, f: &str) -> bool {
        self.file(f).exists()
    }

    pub fn read(&self, f: &str) -> anyhow::Result<String> {
        crate::process::read(self.file(f))
    }

    /// A raw write, errno kept (the experiments assert on EINVAL, EBUSY).
    pub fn write(&self, f: &str, v: &str) -> io::Result<()> {
        std::fs::write(self.file(f), v)
    }

    fn write_ctx(&self, f: &str, v: &str) -> anyhow::Result<()> {
        self.write(f, v)
            .with_context(|| format!("writing {v:?} to {}", self.file(f).display()))
    }

    fn keyed(&self, f: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(parse_keyed(&self.read(f)?))
    }

    fn number(&self, f: &str) -> anyhow::Result<u64> {
        let t = self.read(f)?;
        t.trim()
            .parse()
            .map_err(|_| anyhow!("{}: not a number: {t:?}", self.file(f).display()))
    }

    /// The group's path relative to its hierarchy root.
    pub fn relative(&self) -> String {
        self.hier.relative(&self.name)
    }

    pub fn spec(&self) -> String {
        self.hier.spec(&self.name)
    }

    /// The file whose writes move a process in (both versions).
    pub fn procs_file(&self) -> PathBuf {
        self.file("cgroup.procs")
    }

    pub fn add_process(&self, pid: i32) -> anyhow::Result<()> {
        self.write_ctx("cgroup.procs", &pid.to_string())
    }

    pub fn procs(&self) -> anyhow::Result<Vec<i32>> {
        Ok(self
            .read("cgroup.procs")?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// rmdir(2), errno kept: EBUSY while tasks live in it.
    pub fn rmdir(&self) -> io::Result<()> {
        std::fs::remove_dir(&self.path)
    }

    /// Teardown: kill what is left inside, remove children before parents.
    pub fn destroy(&self) -> Result<(), String> {
        if !self.path.exists() {
            return Ok(());
        }
        crate::cleanup::remove_cgroup_tree(&self.path)
    }

    // ---- memory ----

    pub fn memory_limit_file(&self) -> &'static str {
        memory_limit_file(self.version())
    }

    pub fn set_memory_limit(&self, l: Limit) -> io::Result<()> {
        self.write(self.memory_limit_file(), &l.memory_text(self.version()))
    }

    pub fn memory_limit(&self) -> anyhow::Result<Limit> {
        let t = self.read(self.memory_limit_file())?;
        Limit::parse_memory(&t, self.version(), page())
            .ok_or_else(|| anyhow!("unparsable memory limit {t:?}"))
    }

    /// Closes the swap escape: with swap, a process over its memory limit
    /// is pushed to swap instead of being killed. v1 caps memory+swap at the
    /// memory limit (`memory.memsw.limit_in_bytes`; needs swap accounting),
    /// else forbids swapping for the group (`memory.swappiness` 0); v2 sets
    /// `memory.swap.max` 0 (absent when the kernel has no swap at all).
    /// Returns what it did, for the report.
    pub fn forbid_swap(&self, limit: u64) -> anyhow::Result<&'static str> {
        match self.version() {
            Version::V1 if self.has("memory.memsw.limit_in_bytes") => {
                self.write_ctx("memory.memsw.limit_in_bytes", &limit.to_string())?;
                Ok("memory.memsw.limit_in_bytes = limit")
            }
            Version::V1 => {
                self.write_ctx("memory.swappiness", "0")?;
                Ok("memory.swappiness = 0 (no swap accounting)")
            }
            Version::V2 if self.has("memory.swap.max") => {
                self.write_ctx("memory.swap.max", "0")?;
                Ok("memory.swap.max = 0")
            }
            Version::V2 => Ok("no memory.swap.max: kernel without swap"),
        }
    }

    pub fn memory_counters(&self) -> anyhow::Result<MemoryCounters> {
        let opt = |f: &str| -> anyhow::Result<Option<u64>> {
            if self.has(f) {
                self.number(f).map(Some)
            } else {
                Ok(None)
            }
        };
        match self.version() {
            Version::V1 => {
                let oc = self.keyed("memory.oom_control")?;
                Ok(MemoryCounters {
                    oom_kill: *oc
                        .get("oom_kill")
                        .ok_or_else(|| anyhow!("memory.oom_control has no oom_kill line"))?,
                    oom: None,
                    max_events: None,
                    failcnt: opt("memory.failcnt")?,
                    memsw_failcnt: opt("memory.memsw.failcnt")?,
                    peak: opt("memory.max_usage_in_bytes")?,
                })
            }
            Version::V2 => {
                let ev = self.keyed("memory.events")?;
                Ok(MemoryCounters {
                    oom_kill: *ev
                        .get("oom_kill")
                        .ok_or_else(|| anyhow!("memory.events has no oom_kill line"))?,
                    oom: ev.get("oom").copied(),
                    max_events: ev.get("max").copied(),
                    failcnt: None,
                    memsw_failcnt: None,
                    peak: opt("memory.peak")?,
                })
            }
        }
    }

    // ---- pids ----

    pub fn set_pids_max(&self, l: Limit) -> io::Result<()> {
        self.write("pids.max", &l.pids_text())
    }

    pub fn pids_max(&self) -> anyhow::Result<Limit> {
        let t = self.read("pids.max")?;
        Limit::parse_pids(&t).ok_or_else(|| anyhow!("unparsable pids.max {t:?}"))
    }

    /// `pids.events max`: forks refused by this group's limit (the file and
    /// its `max` line exist on v1 too).
    pub fn pids_max_events(&self) -> anyhow::Result<u64> {
        self.keyed("pids.events")?
            .get("max")
            .copied()
            .ok_or_else(|| anyhow!("pids.events has no max line"))
    }

    // ---- cpu ----

    /// A CFS bandwidth limit: `quota_us` of CPU time per `period_us`
    /// (`None`: unlimited). v1 `cpu.cfs_period_us` + `cpu.cfs_quota_us`,
    /// v2 `cpu.max`.
    pub fn set_cpu_quota(&self, quota_us: Option<u64>, period_us: u64) -> anyhow::Result<()> {
        match self.version() {
            Version::V1 => {
                self.write_ctx("cpu.cfs_period_us", &period_us.to_string())?;
                let q = quota_us.map_or("-1".to_string(), |q| q.to_string());
                self.write_ctx("cpu.cfs_quota_us", &q)
            }
            Version::V2 => self.write_ctx("cpu.max", &format_cpu_max(quota_us, period_us)),
        }
    }

    /// The group's CPU weight against its siblings as a multiple of the
    /// default: v1 `cpu.shares` (default 1024), v2 `cpu.weight` (100).
    pub fn set_cpu_weight_factor(&self, factor: u64) -> anyhow::Result<()> {
        match self.version() {
            Version::V1 => self.write_ctx("cpu.shares", &(1024 * factor).to_string()),
            Version::V2 => self.write_ctx("cpu.weight", &(100 * factor).min(10000).to_string()),
        }
    }

    pub fn cpu_quota(&self) -> anyhow::Result<(Option<u64>, u64)> {
        match self.version() {
            Version::V1 => {
                let q: i64 = self.read("cpu.cfs_quota_us")?.trim().parse()?;
                let p = self.number("cpu.cfs_period_us")?;
                Ok(((q >= 0).then_some(q as u64), p))
            }
            Version::V2 => {
                let t = self.read("cpu.max")?;
                parse_cpu_max(&t).ok_or_else(|| anyhow!("unparsable cpu.max {t:?}"))
            }
        }
    }

    pub fn cpu_stat(&self) -> anyhow::Result<CpuStat> {
        let t = self.read("cpu.stat")?;
        CpuStat::parse(&t, self.version()).ok_or_else(|| anyhow!("unparsable cpu.stat {t:?}"))
    }
}

/// Whether a process is in the group, as `/proc/<pid>/cgroup` tells.
pub fn process_group(pid: i32, hier: &Hierarchy) -> anyhow::Result<Option<String>> {
    let t = crate::process::read(format!("/proc/{pid}/cgroup"))?;
    Ok(proc_cgroup_path(&t, hier.controller.name(), hier.version))
}

/// Owner uid of a path.
pub fn owner(p: &Path) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p)?.uid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn layout(v1: &[(&str, &str)], v2: Option<(&str, &[&str])>) -> CgroupLayout {
        let mut l = CgroupLayout::default();
        for (c, m) in v1 {
            l.v1.push(c.to_string());
            l.v1_mounts.insert(c.to_string(), PathBuf::from(m));
        }
        if let Some((m, ctrls)) = v2 {
            l.v2_mount = Some(PathBuf::from(m));
            l.v2 = ctrls.iter().map(|c| c.to_string()).collect();
        }
        l
    }

    #[rstest]
    // This machine: hybrid, memory on v1, only hugetlb on v2.
    #[case(layout(&[("memory", "/sys/fs/cgroup/memory")], Some(("/sys/fs/cgroup/unified", &["hugetlb"]))),
           Controller::Memory, Some((Version::V1, "/sys/fs/cgroup/memory")))]
    // Pure v2.
    #[case(layout(&[], Some(("/sys/fs/cgroup", &["cpu", "memory", "pids"]))),
           Controller::Memory, Some((Version::V2, "/sys/fs/cgroup")))]
    // Hybrid with pids moved to v2.
    #[case(layout(&[("memory", "/m")], Some(("/u", &["pids"]))),
           Controller::Pids, Some((Version::V2, "/u")))]
    #[case(layout(&[("memory", "/m")], Some(("/u", &["pids"]))), Controller::Cpu, None)]
    fn hierarchy_follows_the_layout(
        #[case] l: CgroupLayout,
        #[case] c: Controller,
        #[case] want: Option<(Version, &str)>,
    ) {
        let got = Hierarchy::from_layout(&l, c).map(|h| (h.version, h.root));
        assert_eq!(got, want.map(|(v, r)| (v, PathBuf::from(r))));
    }

    #[rstest]
    #[case(4096, 9223372036854771712)]
    #[case(65536, 9223372036854710272)]
    fn v1_unlimited_is_page_counter_max(#[case] page: u64, #[case] want: u64) {
        assert_eq!(v1_memory_unlimited(page), want);
    }

    #[rstest]
    #[case(10_000_000, 4096, 9_998_336)]
    #[case(4097, 4096, 4096)]
    #[case(4095, 4096, 0)]
    #[case(10_000_000, 65536, 9_961_472)]
    fn page_rounding(#[case] bytes: u64, #[case] page: u64, #[case] want: u64) {
        assert_eq!(page_rounded(bytes, page), want);
    }

    #[rstest]
    #[case("9998336\n", Version::V1, Some(Limit::Value(9998336)))]
    #[case("9223372036854771712\n", Version::V1, Some(Limit::Max))]
    #[case("max\n", Version::V2, Some(Limit::Max))]
    #[case("9998336\n", Version::V2, Some(Limit::Value(9998336)))]
    #[case("max\n", Version::V1, None)]
    #[case("", Version::V2, None)]
    fn memory_limit_parse(#[case] t: &str, #[case] v: Version, #[case] want: Option<Limit>) {
        assert_eq!(Limit::parse_memory(t, v, 4096), want);
    }

    #[rstest]
    #[case(Limit::Max, Version::V1, "-1")]
    #[case(Limit::Max, Version::V2, "max")]
    #[case(Limit::Value(4096), Version::V2, "4096")]
    fn memory_limit_text(#[case] l: Limit, #[case] v: Version, #[case] want: &str) {
        assert_eq!(l.memory_text(v), want);
    }

    #[rstest]
    #[case("max\n", Some(Limit::Max))]
    #[case("5\n", Some(Limit::Value(5)))]
    #[case("-1", None)]
    fn pids_max_parse(#[case] t: &str, #[case] want: Option<Limit>) {
        assert_eq!(Limit::parse_pids(t), want);
        if let Some(l) = want {
            assert_eq!(Limit::parse_pids(&l.pids_text()), Some(l));
        }
    }

    #[test]
    fn keyed_files_of_both_versions() {
        let v1_oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(parse_keyed(v1_oom).get("oom_kill"), Some(&1));
        let v2_events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        let m = parse_keyed(v2_events);
        assert_eq!((m["max"], m["oom"], m["oom_kill"]), (12, 1, 1));
        // v1 and v2 pids.events share the form; newer v2 adds max.imposed.
        assert_eq!(parse_keyed("max 3\nmax.imposed 3\n")["max"], 3);
        // Lines that are not `key number` are skipped, never misread.
        assert!(parse_keyed("some avg10=0.00 total=0\n").is_empty());
    }

    #[rstest]
    #[case("nr_periods 10\nnr_throttled 9\nthrottled_time 880000000\nnr_bursts 0\nburst_time 0\n",
           Version::V1, Some(CpuStat { nr_periods: 10, nr_throttled: 9, throttled_usec: 880000 }))]
    #[case("usage_usec 100\nuser_usec 90\nsystem_usec 10\nnr_periods 10\nnr_throttled 9\nthrottled_usec 880000\nnr_bursts 0\nburst_usec 0\n",
           Version::V2, Some(CpuStat { nr_periods: 10, nr_throttled: 9, throttled_usec: 880000 }))]
    // v2 without the cpu controller enabled shows only usage lines.
    #[case("usage_usec 100\nuser_usec 90\nsystem_usec 10\n", Version::V2, None)]
    fn cpu_stat_parse(#[case] t: &str, #[case] v: Version, #[case] want: Option<CpuStat>) {
        assert_eq!(CpuStat::parse(t, v), want);
    }

    #[rstest]
    #[case(Some(10000), 100000, "10000 100000")]
    #[case(None, 100000, "max 100000")]
    fn cpu_max_roundtrip(#[case] q: Option<u64>, #[case] p: u64, #[case] text: &str) {
        assert_eq!(format_cpu_max(q, p), text);
        assert_eq!(parse_cpu_max(&format!("{text}\n")), Some((q, p)));
    }

    #[rstest]
    #[case("max")]
    #[case("10000 100000 7")]
    #[case("x 100000")]
    fn cpu_max_rejects(#[case] t: &str) {
        assert_eq!(parse_cpu_max(t), None);
    }

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/isocheck/p\n4:memory:/isocheck/x\n2:cpu,cpuacct:/isocheck/c\n0::/\n";

    #[rstest]
    #[case(HYBRID, "memory", Version::V1, Some("/isocheck/x"))]
    #[case(HYBRID, "cpu", Version::V1, Some("/isocheck/c"))]
    #[case(HYBRID, "cpuacct", Version::V1, Some("/isocheck/c"))]
    #[case(HYBRID, "pids", Version::V2, Some("/"))]
    #[case(HYBRID, "blkio", Version::V1, None)]
    #[case("0::/isocheck/y\n", "memory", Version::V2, Some("/isocheck/y"))]
    fn proc_cgroup(
        #[case] t: &str,
        #[case] c: &str,
        #[case] v: Version,
        #[case] want: Option<&str>,
    ) {
        assert_eq!(proc_cgroup_path(t, c, v).as_deref(), want);
    }
}
