//! `memory.oom.group` (kselftest test_memcg_oom_group_*_events): one OOM
//! in the group takes every task of it, except one the admin protected.

use super::*;

const LIMIT: u64 = 32 << 20;
const ALLOC: &str = "67108864";

fn oom_kills(g: &Group) -> anyhow::Result<u64> {
    Ok(g.memory_counters()?.oom_kill)
}

/// Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some roots lack.
fn protect(pid: i32) -> Outcome {
    match std::fs::write(format!("/proc/{pid}/oom_score_adj"), "-1000") {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(Problem::Unmet(
            "setting oom_score_adj -1000 needs CAP_SYS_RESOURCE, which this root lacks".into(),
        )),
        Err(e) => broken!("oom_score_adj of {pid}: {e}"),
    }
}

fn park(ctx: &Ctx, g: &Group) -> anyhow::Result<(Spawned, i32)> {
    let procs = g.procs_file().to_string_lossy().into_owned();
    let mut s = Spawned::start(ctx.helper().args(["cg-park", "--procs", &procs]))?;
    let pid = parked_pid(&mut s)?;
    Ok((s, pid))
}

/// How many of the bystanders died, once `expect` of them did (bounded).
fn reap(b: &mut [(Spawned, i32); 2], expect: u64) -> u64 {
    let mut dead = || {
        b.iter_mut()
            .map(|(s, _)| u64::from(s.child.try_wait().ok().flatten().is_some()))
            .sum::<u64>()
    };
    let secs = if crate::process::in_qemu_guest() {
        30
    } else {
        5
    };
    wait_until(Duration::from_secs(secs), || dead() >= expect);
    dead()
}

/// The body of `cg.oom-group`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn oom_group(ctx: &mut Ctx, v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "oomgroup")?;
    if g.version() != Version::V2 || !g.has("memory.oom.group") {
        return Err(Problem::Unmet(
            "memory.oom.group is a cgroup v2 file; memory is on v1 here".into(),
        ));
    }
    g.set_memory_limit(Limit::Value(LIMIT))?;
    ctx.observe("swap", g.forbid_swap(LIMIT)?);
    g.write("memory.oom.group", if v.isolated() { "1" } else { "0" })?;
    ctx.observe("oom_group", g.read("memory.oom.group")?.trim());
    let mut bystanders = [park(ctx, &g)?, park(ctx, &g)?];
    let (mut protected, ppid) = park(ctx, &g)?;
    protect(ppid)?;
    let before = oom_kills(&g)?;
    let procs = g.procs_file().to_string_lossy().into_owned();
    let r = run(ctx
        .helper()
        .args(["cg-alloc", "--procs", &procs, "--bytes", ALLOC]))?;
    ctx.observe("allocator_signal", r.signal);
    if r.signal != Some(9) {
        broken!(
            "the allocator was not OOM-killed: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    // Every kill of the OOM was counted before the allocator could be reaped.
    let kills = oom_kills(&g)? - before;
    ctx.observe("oom_kill_count", kills);
    // Killed bystanders were counted: wait for as many as the count allows.
    let bystanders_dead = reap(&mut bystanders, kills.saturating_sub(1).min(2));
    let protected_alive = protected.child.try_wait()?.is_none();
    let events = cgroups::parse_keyed(&g.read("memory.events")?);
    ctx.observe("oom_group_kill", events.get("oom_group_kill"));
    ctx.observe("bystanders_killed", bystanders_dead);
    ctx.observe("protected_alive", protected_alive);
    check_eq!(
        bystanders_dead,
        2,
        "tasks of the group killed beside the allocator"
    );
    // The group kill counts the first victim again (6.12: 4 for 3 tasks).
    check!(
        kills >= 3,
        "memory.events oom_kill rose by {kills} for 3 killed tasks"
    );
    check!(
        protected_alive,
        "the task with oom_score_adj -1000 was killed"
    );
    Ok(())
}
