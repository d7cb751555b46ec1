//! cg.oom-kill-at-limit: an allocation past the memory limit is killed.

use super::*;
use crate::process::Ran;

// ---------------------------------------------------------------------------
// cg.oom-kill-at-limit

/// Four times the limit: far enough past it that the kill is certain, small
/// enough that the control (which survives, under 256 MiB) faults in only
/// 2 x 32 MiB (2 x 64 MiB took ~0.25 s of the run's critical path).
const OOM_ALLOC: u64 = 32 << 20;

/// Reads the counters once `oom_kill` reached `at_least`, bounded: the
/// kernel counts the kill before it sends SIGKILL, so this returns at once
/// unless something is wrong.
fn counters_after_kill(g: &Group, at_least: u64) -> anyhow::Result<MemoryCounters> {
    wait_until(Duration::from_secs(5), || {
        g.memory_counters()
            .map(|c| c.oom_kill >= at_least)
            .unwrap_or(false)
    });
    g.memory_counters()
}

/// The body of `cg.oom-kill-at-limit`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn oom_kill_at_limit(ctx: &mut Ctx, v: Variant) -> Outcome {
    let limit: u64 = if v.isolated() { 8 << 20 } else { 256 << 20 };
    let g = limited_group(ctx, limit)?;
    let procs = g.procs_file().to_string_lossy().into_owned();
    let c0 = g.memory_counters()?;
    let (r, shell_status, c1) = alloc_through_shell(ctx, &g, &procs, c0.oom_kill)?;
    let (r2, c2) = alloc_through_waitpid(ctx, &g, &procs, c1.oom_kill)?;
    ctx.observe("shell_status", shell_status);
    ctx.observe("waitpid", json!({ "code": r2.code, "signal": r2.signal }));
    ctx.measure("counters_before", &c0);
    ctx.measure("counters_after_shell_run", &c1);
    ctx.measure("counters_after_waitpid_run", &c2);

    let Some(status) = shell_status else {
        broken!("the shell printed no status: {:?} {:?}", r.stdout, r.stderr);
    };
    require_completed_or_killed(status, &r, &r2)?;
    check_eq!(status, 137, "shell status of the allocating child");
    check_eq!(
        r2.signal,
        Some(libc::SIGKILL),
        "waitpid signal of the allocating child"
    );
    check_eq!(
        c1.oom_kill - c0.oom_kill,
        1,
        "oom_kill rise for the first kill"
    );
    check_eq!(
        c2.oom_kill - c1.oom_kill,
        1,
        "oom_kill rise for the second kill"
    );
    let peak = peak_verdict(c2.peak, limit);
    ctx.observe("peak_check", peak.as_ref().unwrap_or_else(|e| e));
    if let Err(why) = peak {
        return Err(Problem::Fail(why));
    }
    Ok(())
}

/// A memory group limited to `limit` with swap closed as an escape, so the
/// allocation meets the limit rather than being paged out.
fn limited_group(ctx: &mut Ctx, limit: u64) -> Result<Group, Problem> {
    let g = new_group(ctx, Controller::Memory, "oom")?;
    g.set_memory_limit(Limit::Value(limit))?;
    let guard = g.forbid_swap(limit)?;
    let read = g.memory_limit()?;
    ctx.observe("limit", limit);
    ctx.observe("limit_read_back", read);
    ctx.observe("allocation", OOM_ALLOC);
    ctx.observe("swap_guard", guard);
    Ok(g)
}

/// Through a shell, as a user sees it: `$?` of the killed child, and the
/// counters once the kill is counted (`kills_before` + 1).
fn alloc_through_shell(
    ctx: &mut Ctx,
    g: &Group,
    procs: &str,
    kills_before: u64,
) -> anyhow::Result<(Ran, Option<i32>, MemoryCounters)> {
    let bytes = OOM_ALLOC.to_string();
    let r = run(ctx
        .cmd("sh")
        .args([
            "-c",
            "\"$0\" helper cg-alloc --procs \"$1\" --bytes \"$2\"; echo \"status=$?\"",
        ])
        .args([&exe(), procs, &bytes]))?;
    let shell_status: Option<i32> = r.stdout.lines().find_map(|l| {
        l.strip_prefix("status=")
            .and_then(|s| s.trim().parse().ok())
    });
    let c = if shell_status == Some(137) {
        counters_after_kill(g, kills_before + 1)?
    } else {
        g.memory_counters()?
    };
    Ok((r, shell_status, c))
}

/// Through waitpid(2): the signal itself, and the counters once the kill
/// is counted.
fn alloc_through_waitpid(
    ctx: &mut Ctx,
    g: &Group,
    procs: &str,
    kills_before: u64,
) -> anyhow::Result<(Ran, MemoryCounters)> {
    let bytes = OOM_ALLOC.to_string();
    let r = run(ctx
        .helper()
        .args(["cg-alloc", "--procs", procs, "--bytes", &bytes]))?;
    let c = if r.signal == Some(libc::SIGKILL) {
        counters_after_kill(g, kills_before + 1)?
    } else {
        g.memory_counters()?
    };
    Ok((r, c))
}

/// The allocation either completes (0) or is killed (137 / SIGKILL);
/// anything else (125: the helper could not join the group) is a broken
/// step in either run, never the limit's doing.
fn require_completed_or_killed(status: i32, r: &Ran, r2: &Ran) -> Outcome {
    if status != 0 && status != 137 {
        broken!("the allocating child exited {status}: {}", r.stderr.trim());
    }
    if r2.code != Some(0) && r2.signal != Some(libc::SIGKILL) {
        broken!(
            "the allocating child ended {:?}/{:?}: {}",
            r2.code,
            r2.signal,
            r2.stderr.trim()
        );
    }
    Ok(())
}

/// "Peak usage never above the limit", or why it cannot be checked: cgroup
/// v2 has no `memory.peak` before 5.19, and that is said, not skipped.
pub fn peak_verdict(peak: Option<u64>, limit: u64) -> Result<String, String> {
    match peak {
        None => Ok("not checkable here: no peak usage file (cgroup v2 before 5.19)".into()),
        Some(p) if p <= limit => Ok(format!("peak {p} <= limit {limit}")),
        Some(p) => Err(format!("peak usage {p} above the limit {limit}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some(8 << 20), true)]
    #[case(Some((8 << 20) + 4096), false)]
    #[case(None, true)]
    fn peak_is_checked_or_said_uncheckable(#[case] peak: Option<u64>, #[case] ok: bool) {
        let v = peak_verdict(peak, 8 << 20);
        assert_eq!(v.is_ok(), ok, "{v:?}");
        if peak.is_none() {
            assert!(v.unwrap().contains("not checkable"));
        }
    }
}
