//! Catalogue section 5: cgroups (memory, pids, cpu), through the seed's
//! libcgroup tools and through the cgroup filesystem directly, in the
//! host's own form (v1 or v2, per controller on a hybrid host). The
//! version-specific files are behind `crate::cgroups`.

use crate::cgroups::{self, Group, Hierarchy, Limit, MemoryCounters, Version};
use crate::experiment::{Ctx, Experiment, Outcome, Problem, Variant};
use crate::helper::cgroup::{CgBurn, CgFork};
use crate::host::HostFacts;
use crate::needs::{cmd, Controller, Need, ROOT};
use crate::process::{run, wait_until, Spawned};
use crate::{broken, check, check_eq, needs};
use serde_json::{json, Value};
use std::time::Duration;

mod cgdelete;
mod limits;
mod memory;
mod oom;

use cgdelete::cgdelete;
pub use cgdelete::{cgdelete_live_task, CgdeleteLive};
use limits::{cpu_quota, pids_max};
use memory::{cgexec_places_process, create_group, kmem_limit, limit_parsing, limit_readback};
pub use memory::{kmem_documented, parse_cases, Kmem, Parse};
use oom::oom_kill_at_limit;
pub use oom::peak_verdict;

/// The memory controller, which most rows of this section use.
const MEM: &[Need] = &[Need::Cgroup(Controller::Memory)];

/// Section 5's rows (cgroups), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("cg.create-group", create_group)
        .asserts("cgcreate -a USER makes the group directory with the memory controller's files, owned by USER; a bare mkdir gets the same files from the kernel, owned by the creator")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE]),
    Experiment::new("cg.limit-readback", limit_readback)
        .asserts("echo 10000000 > the memory limit file reads back the page-rounded value (9998336 with 4 KiB pages)")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM]),
    Experiment::new("cg.limit-parsing", limit_parsing)
        .asserts("the memory limit parse: page round-down (page+1 -> page, page-1 -> 0), the unlimited value accepted, `1.0` `1xx` `xx` EINVAL with the old limit kept")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM]),
    Experiment::new("cg.kmem-limit", kmem_limit)
        .asserts("writing memory.kmem.limit_in_bytes behaves as this kernel version documents (enforced / ENOTSUPP / absent / accepted without effect)")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, &[Need::CgroupV1(Controller::Memory)]]),
    Experiment::new("cg.cgexec-places-process", cgexec_places_process)
        .asserts("cgexec -g memory:GROUP (and writing cgroup.procs then exec) puts the process in GROUP: /proc/PID/cgroup names it, cgroup.procs lists it")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE, cmd::CGEXEC]),
    Experiment::new("cg.oom-kill-at-limit", oom_kill_at_limit)
        .asserts("allocating 32 MiB under an 8 MiB limit (no swap escape): SIGKILL (shell 137, waitpid signal 9), oom_kill +1 per kill, peak usage <= limit")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM])
        .control("the same allocation under a 256 MiB limit"),
    Experiment::new("cg.cgdelete", cgdelete)
        .asserts("rmdir of a group with a live task fails with EBUSY, succeeds once it exited; cgdelete moves the task to the parent on v1, fails busy on v2 (no internal processes) until it exited")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE, cmd::CGEXEC, cmd::CGDELETE]),
    Experiment::new("cg.pids-max", pids_max)
        .asserts("with pids.max=5 the group's 6th process cannot be forked (EAGAIN); pids.events max rises by 1")
        .needs(needs![ROOT, crate::needs::kc::CGROUP_PIDS, &[Need::Cgroup(Controller::Pids)]]),
    Experiment::new("cg.cpu-quota", cpu_quota)
        .asserts("a busy child under a 10% CFS quota (1000/10000 us) is throttled (nr_throttled > 0) and gets <= 15% of a CPU over 150 ms (15 periods)")
        .needs(needs![ROOT, crate::needs::kc::CFS_BANDWIDTH, &[Need::Cgroup(Controller::Cpu)]])
        .control("no quota (side by side with an unquota'd twin, under the same load)"),
];

// ---------------------------------------------------------------------------
// Fixtures

/// The host's hierarchy for `ctrl`, or an unmet need when a v2 root does
/// not delegate the controller (enabling it there would change the host).
fn hierarchy(ctrl: Controller) -> Result<Hierarchy, Problem> {
    let h = Hierarchy::require(ctrl).map_err(Problem::Unmet)?;
    if let Some(why) = h.delegation_unmet() {
        return Err(Problem::Unmet(why));
    }
    Ok(h)
}

/// Registers the removal of `g` (tasks killed, children first). The shared
/// parent stays until the run ends (`cleanup::sweep_this_run`): removing it
/// here would race with parallel experiments creating groups in it.
fn defer_destroy(ctx: &mut Ctx, g: &Group) {
    let g = g.clone();
    ctx.defer(&format!("remove cgroup {}", g.path.display()), move || {
        if let Err(e) = g.destroy() {
            eprintln!("isocheck: removing {}: {e}", g.path.display());
        }
    });
}

/// A new group of this experiment, removed at teardown.
fn new_group(ctx: &mut Ctx, ctrl: Controller, role: &str) -> Result<Group, Problem> {
    let h = hierarchy(ctrl)?;
    let name = ctx.name(role);
    let g = h.group(&name);
    defer_destroy(ctx, &g);
    h.create(&name)?;
    Ok(g)
}

/// `cgcreate [ARGS] -g SPEC` for a new group of this experiment; retried
/// when a parallel teardown removed the shared parent under it.
fn cgcreate(ctx: &mut Ctx, role: &str, args: &[&str]) -> Result<Group, Problem> {
    let h = hierarchy(Controller::Memory)?;
    let name = ctx.name(role);
    let g = h.group(&name);
    defer_destroy(ctx, &g);
    let mut last = String::new();
    for _ in 0..5 {
        h.ensure_parent()?;
        let r = run(ctx.cmd("cgcreate").args(args).args(["-g", &g.spec()]))?;
        if r.success() && g.path.is_dir() {
            return Ok(g);
        }
        last = format!("status {}: {}", r.shell_status(), r.stderr.trim());
        // A parallel experiment's leak cleanup may have removed the shared
        // parent under cgcreate (on v2 a re-made parent also lacks the
        // controller until it is delegated again): start over.
        let _ = g.destroy();
    }
    broken!("cgcreate {args:?} -g {} failed: {last}", g.spec())
}

fn exe() -> String {
    crate::helper::helper_path().to_string_lossy().into_owned()
}

fn page() -> u64 {
    HostFacts::get().page_size
}

fn errno_of(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
        .unwrap_or_else(|| e.to_string())
}

/// Waits for the `ready PID` line of `helper cg-park`.
fn parked_pid(s: &mut Spawned) -> anyhow::Result<i32> {
    let l = s.read_line()?;
    l.strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("expected `ready PID` from cg-park, got {l:?}"))
}
