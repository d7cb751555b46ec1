//! Limits that act through the hierarchy: a parent's `pids.max` over its
//! children (LTP pids.sh, kselftest test_pids), and a cpuset's CPUs as the
//! scheduler's affinity (LTP cpuset, moby TestRunWithCpusetCpus).

use super::*;
use crate::helper::cgcore::CgAffinity;
use crate::helper::cgroup::CgFork;

// ---------------------------------------------------------------------------
// cg.pids-hierarchical

const PARENT_MAX: u64 = 4;
const CHILD_MAX: u64 = 10;

fn cg_fork(ctx: &Ctx, g: &Group, max: u32) -> Result<CgFork, Problem> {
    let procs = g.procs_file().to_string_lossy().into_owned();
    let r = run(ctx
        .helper()
        .args(["cg-fork", "--procs", &procs, "--max", &max.to_string()]))?;
    if !r.success() {
        broken!("cg-fork: status {}: {}", r.shell_status(), r.stderr.trim());
    }
    Ok(serde_json::from_str(r.stdout.trim())?)
}

fn park_in(ctx: &Ctx, g: &Group) -> anyhow::Result<Spawned> {
    let procs = g.procs_file().to_string_lossy().into_owned();
    let mut s = Spawned::start(ctx.helper().args(["cg-park", "--procs", &procs]))?;
    parked_pid(&mut s)?;
    Ok(s)
}

/// The body of `cg.pids-hierarchical`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn pids_hierarchical(ctx: &mut Ctx, v: Variant) -> Outcome {
    let p = new_group(ctx, Controller::Pids, "pidsparent")?;
    let c1 = p.subgroup("c1", &[Controller::Pids])?;
    let c2 = p.subgroup("c2", &[])?;
    if v.isolated() {
        p.set_pids_max(Limit::Value(PARENT_MAX))?;
    }
    c1.set_pids_max(Limit::Value(CHILD_MAX))?;
    c2.set_pids_max(Limit::Value(CHILD_MAX))?;
    ctx.observe("parent_max", p.pids_max()?);
    ctx.observe("child_max", c2.pids_max()?);
    // Two tasks held in c1: the forks in c2 then meet the parent's limit
    // (a migration is charged without a limit check, so the forker joins).
    let held = [park_in(ctx, &c1)?, park_in(ctx, &c1)?];
    let before = p.pids_max_events()?;
    let out = cg_fork(ctx, &c2, 64)?;
    ctx.observe("fork_in_c2", &out);
    ctx.measure("parent_events_max_rise", p.pids_max_events()? - before);
    let total = held.len() as u64 + 1 + out.forked as u64;
    check_eq!(
        total,
        PARENT_MAX,
        "tasks under the parent when a fork in c2 failed"
    );
    check_eq!(
        out.errno.as_deref(),
        Some("EAGAIN"),
        "errno of the refused fork"
    );
    lowered_limit(ctx, &c1, held)
}

/// `pids.max` lowered below the current count: accepted, kills nothing,
/// refuses the next fork.
fn lowered_limit(ctx: &mut Ctx, c1: &Group, mut held: [Spawned; 2]) -> Outcome {
    let lowered = c1.set_pids_max(Limit::Value(1));
    ctx.observe(
        "lower_below_current",
        lowered.as_ref().map_err(errno_of).err(),
    );
    lowered?;
    let current: u64 = c1.read("pids.current")?.trim().parse()?;
    ctx.observe("c1_current_after_lowering", current);
    let out = cg_fork(ctx, c1, 4)?;
    ctx.observe("fork_in_lowered_c1", &out);
    let alive = held
        .iter_mut()
        .all(|s| s.child.try_wait().ok().flatten().is_none());
    ctx.observe("held_tasks_alive", alive);
    check!(alive, "lowering pids.max killed a task of the group");
    check_eq!(current, 2, "tasks in c1 after lowering its pids.max to 1");
    check_eq!(
        (out.forked, out.errno.as_deref()),
        (0, Some("EAGAIN")),
        "forks in c1 over its lowered limit"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.cpuset-affinity

/// The online CPUs, from `/sys/devices/system/cpu/online` (`0-1`, `0,2-3`).
fn online_cpus() -> anyhow::Result<Vec<usize>> {
    let t = crate::process::read("/sys/devices/system/cpu/online")?;
    let mut out = Vec::new();
    for part in t.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        out.extend(a.parse::<usize>()?..=b.parse::<usize>()?);
    }
    Ok(out)
}

/// v1 cpusets start empty and refuse tasks until both files are set; the
/// suite's parent copies the root's, a group then takes `cpus`.
fn cpuset_files(g: &Group, cpus: Option<&str>) -> anyhow::Result<()> {
    if g.version() == Version::V2 {
        if let Some(c) = cpus {
            g.write("cpuset.cpus", c)?;
        }
        return Ok(());
    }
    let root = g.hier.root.clone();
    let parent = g.hier.parent_group();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let all = crate::process::read(root.join(f))?;
        if parent.read(f)?.trim().is_empty() {
            parent.write(f, all.trim())?;
        }
        let mine = if f == "cpuset.cpus" { cpus } else { None };
        g.write(f, mine.unwrap_or(all.trim()))?;
    }
    Ok(())
}

/// The body of `cg.cpuset-affinity`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn cpuset_affinity(ctx: &mut Ctx, v: Variant) -> Outcome {
    let online = online_cpus()?;
    if online.len() < 2 {
        return Err(Problem::Unmet(format!(
            "needs 2 online CPUs (this host: {online:?})"
        )));
    }
    let g = new_group(ctx, Controller::Cpuset, "cpuset")?;
    let out = new_group(ctx, Controller::Cpuset, "cpusetout")?;
    cpuset_files(&g, Some("0"))?;
    cpuset_files(&out, None)?;
    let other = online[1].to_string();
    let mut args = vec!["cg-affinity".to_string(), "--cpu".into(), other];
    if v.isolated() {
        for (k, grp) in [("--procs", &g), ("--out", &out)] {
            args.push(k.into());
            args.push(grp.procs_file().to_string_lossy().into_owned());
        }
    }
    let r = run(ctx.helper().args(&args))?;
    if !r.success() {
        broken!(
            "cg-affinity: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let a: CgAffinity = serde_json::from_str(r.stdout.trim())?;
    ctx.observe("kernel", &a);
    check_eq!(a.affinity, vec![0], "sched_getaffinity in the cpuset");
    check_eq!(a.cpus_allowed_list, "0", "Cpus_allowed_list in the cpuset");
    check_eq!(
        a.set_other_errno.as_deref(),
        Some("EINVAL"),
        "sched_setaffinity to a CPU outside the cpuset"
    );
    check_eq!(
        a.affinity_out,
        Some(online),
        "affinity after moving out of the cpuset"
    );
    cpuset_cli(ctx, v, &g)
}

/// The seed's tools: `cgexec -g cpuset:GROUP` and the status line it shows.
fn cpuset_cli(ctx: &mut Ctx, v: Variant, g: &Group) -> Outcome {
    let mut c = if v.isolated() {
        let mut c = ctx.cmd("cgexec");
        c.args(["-g", &g.spec(), "grep"]);
        c
    } else {
        ctx.cmd("grep")
    };
    let r = run(c.args(["Cpus_allowed_list", "/proc/self/status"]))?;
    if !r.success() {
        broken!(
            "cgexec grep: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let list = r.stdout.split(':').nth(1).unwrap_or("").trim().to_string();
    ctx.observe("cgexec_cpus_allowed_list", &list);
    check_eq!(list, "0", "Cpus_allowed_list under cgexec -g cpuset");
    Ok(())
}
