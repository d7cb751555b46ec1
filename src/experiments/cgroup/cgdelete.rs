//! cg.cgdelete: removing a group that still holds a live task.

use super::*;

// ---------------------------------------------------------------------------
// cg.cgdelete

/// What the seed's `cgdelete` does to a group with a live task. libcgroup
/// (cgroup_delete_cgroup, libcgroup.h) first moves the tasks to the parent
/// group, then removes the directory. On v1 that works. On v2 the suite's
/// parent delegates controllers to its children, so the no-internal-process
/// rule refuses the move (EBUSY) and cgdelete fails, leaving both in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgdeleteLive {
    /// v1: the task moves to the parent group and the directory goes.
    MovesTaskToParent,
    /// v2: the move is refused (EBUSY) and both stay.
    RefusedBusy,
}

/// What cgdelete of a group with a live task does on this version; the row asserts it.
pub fn cgdelete_live_task(v: Version) -> CgdeleteLive {
    match v {
        Version::V1 => CgdeleteLive::MovesTaskToParent,
        Version::V2 => CgdeleteLive::RefusedBusy,
    }
}

/// The body of `cg.cgdelete`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn cgdelete(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let seed = seed_cgdelete(ctx)?;
    let kernel = kernel_rmdir(ctx)?;
    check_eq!(
        seed.got,
        Some(seed.expected),
        "cgdelete {} with a live task",
        seed.group.spec()
    );
    check_task_placement(&seed)?;
    check_eq!(
        kernel.busy,
        Some(libc::EBUSY),
        "rmdir of a group with a live task"
    );
    check!(
        kernel.exists_while_busy && kernel.listed,
        "the busy group vanished or lost its task"
    );
    check!(
        kernel.removed,
        "rmdir after the task exited: {:?}",
        kernel.last
    );
    Ok(())
}

/// What the seed's cgdelete did to a group with a live task.
struct SeedCgdelete {
    group: Group,
    expected: CgdeleteLive,
    got: Option<CgdeleteLive>,
    now_in: Option<String>,
    after_exit: Value,
}

/// The seed's cgdelete on a group with a live task (the task started by
/// cgexec), then again once the task is gone.
fn seed_cgdelete(ctx: &mut Ctx) -> Result<SeedCgdelete, Problem> {
    let g = cgcreate(ctx, "cgdel", &[])?;
    let expected = cgdelete_live_task(g.version());
    let mut s =
        Spawned::start(
            ctx.cmd("cgexec")
                .args(["-g", &g.spec(), &exe(), "helper", "cg-park"]),
        )?;
    let pid = parked_pid(&mut s)?;
    let r = run(ctx.cmd("cgdelete").arg(g.spec()))?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    let now_in = cgroups::process_group(pid, &g.hier).ok().flatten();
    let exists_after = g.path.exists();
    s.kill();
    let after_exit = if exists_after {
        cgdelete_after_exit(ctx, &g)
    } else {
        Value::Null
    };
    let got = if r.success() && !exists_after && alive {
        Some(CgdeleteLive::MovesTaskToParent)
    } else if !r.success() && r.stderr.contains("busy") && exists_after {
        Some(CgdeleteLive::RefusedBusy)
    } else {
        None
    };
    ctx.observe(
        "cgdelete_live_task",
        json!({
            "status": r.shell_status(), "stderr": r.stderr.trim(),
            "group_exists_after": exists_after, "task_alive": alive,
            "task_now_in": now_in, "outcome": got, "expected": expected,
            "after_task_exit": after_exit,
        }),
    );
    Ok(SeedCgdelete {
        group: g,
        expected,
        got,
        now_in,
        after_exit,
    })
}

/// Once the task is gone, cgdelete removes what is left (v2); retried
/// while the kernel finishes the task's exit.
fn cgdelete_after_exit(ctx: &mut Ctx, g: &Group) -> Value {
    let mut last = None;
    let gone = wait_until(Duration::from_secs(5), || {
        last = run(ctx.cmd("cgdelete").arg(g.spec())).ok();
        !g.path.exists()
    });
    json!({
        "removed": gone,
        "status": last.as_ref().map(|r| r.shell_status()),
        "stderr": last.as_ref().map(|r| r.stderr.trim().to_string()),
    })
}

/// Where the task is after cgdelete: the suite's parent when cgdelete moved
/// it (v1), its own group when cgdelete was refused (v2).
fn check_task_placement(seed: &SeedCgdelete) -> Outcome {
    match seed.expected {
        CgdeleteLive::MovesTaskToParent => {
            let parent = format!("/{}", cgroups::SUITE_PARENT);
            check_eq!(
                seed.now_in.as_deref(),
                Some(parent.as_str()),
                "cgroup of the task after cgdelete"
            );
        }
        CgdeleteLive::RefusedBusy => {
            let own = format!("/{}", seed.group.relative());
            check_eq!(
                seed.now_in.as_deref(),
                Some(own.as_str()),
                "cgroup of the task after the refused cgdelete"
            );
            check!(
                seed.after_exit["removed"] == json!(true),
                "cgdelete after the task exited: {}",
                seed.after_exit
            );
        }
    }
    Ok(())
}

/// What rmdir(2) did to a group with a live task, and after it exited.
struct KernelRmdir {
    busy: Option<i32>,
    exists_while_busy: bool,
    listed: bool,
    removed: bool,
    last: Option<String>,
}

/// The kernel's answer: rmdir(2) while a task lives in the group.
fn kernel_rmdir(ctx: &mut Ctx) -> Result<KernelRmdir, Problem> {
    let exe = exe();
    let g2 = new_group(ctx, Controller::Memory, "rmdir")?;
    let procs = g2.procs_file().to_string_lossy().into_owned();
    let mut s2 = Spawned::start(ctx.helper().args([
        "cg-enter", "--procs", &procs, "--", &exe, "helper", "cg-park",
    ]))?;
    let pid2 = parked_pid(&mut s2)?;
    let busy = g2.rmdir();
    let exists_while_busy = g2.path.exists();
    let listed = g2.procs()?.contains(&pid2);
    s2.kill();
    // The group empties once the task is reaped; the kernel may still be
    // finishing its exit when wait returns, so retry briefly.
    let mut last = None;
    let removed = wait_until(Duration::from_secs(5), || match g2.rmdir() {
        Ok(()) => true,
        Err(e) => {
            last = Some(errno_of(&e));
            false
        }
    });
    ctx.observe(
        "rmdir",
        json!({
            "with_live_task": busy.as_ref().err().map(errno_of),
            "exists_while_busy": exists_while_busy, "task_listed": listed,
            "after_exit_removed": removed, "after_exit_last_error": last,
        }),
    );
    Ok(KernelRmdir {
        busy: busy.err().and_then(|e| e.raw_os_error()),
        exists_while_busy,
        listed,
        removed,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Version::V1, CgdeleteLive::MovesTaskToParent)]
    #[case(Version::V2, CgdeleteLive::RefusedBusy)]
    fn cgdelete_with_a_live_task(#[case] v: Version, #[case] want: CgdeleteLive) {
        assert_eq!(cgdelete_live_task(v), want);
    }
}
