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

mod formats;
mod group;

pub use formats::{
    format_cpu_max, memory_limit_file, page_rounded, parse_cpu_max, parse_keyed, proc_cgroup_path,
    v1_memory_unlimited, CpuStat, Limit, MemoryCounters,
};
pub use group::{owner, process_group, Group};

/// The directory under each hierarchy root that holds every group the suite makes, so the sweeper finds them in one place.
pub const SUITE_PARENT: &str = "isocheck";

/// The cgroup version of a hierarchy: file names and formats differ between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// A per-controller hierarchy (`/sys/fs/cgroup/<controller>`).
    V1,
    /// The unified hierarchy (`cgroup2`).
    V2,
}

/// Where one controller lives on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controller this hierarchy is for.
    pub controller: Controller,
    /// The version whose files it has.
    pub version: Version,
    /// The mount point: v1's controller mount or the cgroup2 mount.
    pub root: PathBuf,
}

impl Hierarchy {
    /// The host's hierarchy for `ctrl`, if it has the controller.
    pub fn of(ctrl: Controller) -> Option<Hierarchy> {
        Self::from_layout(&HostFacts::get().cgroup, ctrl)
    }

    /// Finds `ctrl` in a layout, v2 first (when its root enables it), else its v1 mount; testable without the host.
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

    /// The cgroup2 hierarchy for the core files every v2 group has
    /// (`cgroup.procs`, `cgroup.kill`, `cgroup.freeze`, `cgroup.events`),
    /// whatever controllers its root enables (none on this project's hybrid
    /// host). Tagged `Freezer`: v2's freezer is such a core file, so the
    /// suite's parent there delegates nothing.
    pub fn v2_core() -> Option<Hierarchy> {
        HostFacts::get()
            .cgroup
            .v2_mount
            .clone()
            .map(|root| Hierarchy {
                controller: Controller::Freezer,
                version: Version::V2,
                root,
            })
    }

    /// Whether groups of this hierarchy need the controller delegated: not
    /// v1, and not v2's core files.
    fn delegates(&self) -> bool {
        self.version == Version::V2 && self.controller != Controller::Freezer
    }

    /// `Hierarchy::of`, or why not (an experiment reports it as an unmet
    /// need: `.map_err(Problem::Unmet)`).
    pub fn require(ctrl: Controller) -> Result<Hierarchy, String> {
        Self::of(ctrl).ok_or_else(|| format!("no {} controller here", ctrl.name()))
    }

    /// Why groups cannot use the controller here: on v2 the root must
    /// delegate it (`cgroup.subtree_control`), and that file is the host's.
    pub fn delegation_unmet(&self) -> Option<String> {
        if !self.delegates() {
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

    /// The suite's parent group in this hierarchy (`SUITE_PARENT` under the root).
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
        if self.delegates() {
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
