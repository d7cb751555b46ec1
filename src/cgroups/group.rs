//! One group's files: limits, counters and member processes, read and
//! written in the host's own form.

use super::*;

/// One group in one hierarchy.
#[derive(Clone, Debug)]
pub struct Group {
    /// The hierarchy (v1 controller mount or v2 unified) the group lives in.
    pub hier: Hierarchy,
    /// The group's name under the suite's parent (run-unique when made by `Ctx::name`).
    pub name: String,
    /// The group's directory in the mounted hierarchy.
    pub path: PathBuf,
}

fn page() -> u64 {
    HostFacts::get().page_size
}

impl Group {
    /// v1 or v2: decides which files hold a limit or a counter.
    pub fn version(&self) -> Version {
        self.hier.version
    }

    /// The path of one of the group's files, e.g. `pids.max`.
    pub fn file(&self, f: &str) -> PathBuf {
        self.path.join(f)
    }

    /// Whether the kernel offers the file (some depend on config or version).
    pub fn has(&self, f: &str) -> bool {
        self.file(f).exists()
    }

    /// Reads one of the group's files as text.
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

    /// `controller:path` for the cgroup-tools' `-g`.
    pub fn spec(&self) -> String {
        self.hier.spec(&self.name)
    }

    /// A new child group `name` of this one. On v2 `ctrls` are enabled in
    /// this group's `cgroup.subtree_control` first, so the child gets their
    /// files; v1 children get every file of their hierarchy.
    pub fn subgroup(&self, name: &str, ctrls: &[Controller]) -> anyhow::Result<Group> {
        if self.version() == Version::V2 {
            for c in ctrls {
                self.write_ctx("cgroup.subtree_control", &format!("+{}", c.name()))?;
            }
        }
        let g = Group {
            hier: self.hier.clone(),
            name: format!("{}/{name}", self.name),
            path: self.path.join(name),
        };
        std::fs::create_dir(&g.path).with_context(|| format!("mkdir {}", g.path.display()))?;
        Ok(g)
    }

    /// The file whose writes move a process in (both versions).
    pub fn procs_file(&self) -> PathBuf {
        self.file("cgroup.procs")
    }

    /// Moves a process in by writing its pid to `cgroup.procs`.
    pub fn add_process(&self, pid: i32) -> anyhow::Result<()> {
        self.write_ctx("cgroup.procs", &pid.to_string())
    }

    /// The pids `cgroup.procs` lists: the members the rows assert on.
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

    /// `memory.limit_in_bytes` (v1) or `memory.max` (v2).
    pub fn memory_limit_file(&self) -> &'static str {
        memory_limit_file(self.version())
    }

    /// Writes the memory limit in the version's form, errno kept for rows that assert on it.
    pub fn set_memory_limit(&self, l: Limit) -> io::Result<()> {
        self.write(self.memory_limit_file(), &l.memory_text(self.version()))
    }

    /// Reads the memory limit back, `max` and v1's page-rounded huge value as unlimited.
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

    /// The OOM and limit-hit counters of whichever files this version has; absent ones are None.
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

    /// Writes `pids.max`, errno kept.
    pub fn set_pids_max(&self, l: Limit) -> io::Result<()> {
        self.write("pids.max", &l.pids_text())
    }

    /// Reads `pids.max` back (`max` is unlimited).
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

    /// The CFS limit as `(quota_us, period_us)`, quota None when unlimited, for either version.
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

    /// `cpu.stat` parsed for either version: the throttling counts the CPU rows measure.
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
