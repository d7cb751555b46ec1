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
mod core;
mod hier;
mod limits;
mod memory;
mod oom;
mod oom_group;

use cgdelete::cgdelete;
pub use cgdelete::{cgdelete_live_task, CgdeleteLive};
use core::{freezer, kill};
use hier::{cpuset_affinity, pids_hierarchical};
use limits::{cpu_quota, pids_max};
use memory::{cgexec_places_process, create_group, kmem_limit, limit_parsing, limit_readback};
pub use memory::{kmem_documented, parse_cases, Kmem, Parse};
use oom::oom_kill_at_limit;
pub use oom::peak_verdict;
use oom_group::oom_group;

/// The memory controller, which most rows of this section use.
const MEM: &[Need] = &[Need::Cgroup(Controller::Memory)];

/// Section 5's rows (cgroups), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("cg.create-group", create_group)
        .asserts("cgcreate -a USER makes the group directory with the memory controller's files, owned by USER; a bare mkdir gets the same files from the kernel, owned by the creator")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE]),
    Experiment::new("cg.limit-readback", limit_readback)
        .asserts("echo 10000000 > the memory limit file reads back the page-rounded value (9998336 with 4 KiB pages)")
        .anchor("youki cgroup_v1_memory").anchor("runtime-tools linux_cgroups_memory")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM]),
    Experiment::new("cg.limit-parsing", limit_parsing)
        .asserts("the memory limit parse: page round-down (page+1 -> page, page-1 -> 0), the unlimited value accepted, `1.0` `1xx` `xx` EINVAL with the old limit kept")
        .anchor("LTP memcg_limit_in_bytes")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM]),
    Experiment::new("cg.kmem-limit", kmem_limit)
        .asserts("writing memory.kmem.limit_in_bytes behaves as this kernel version documents (enforced / ENOTSUPP / absent / accepted without effect)")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, &[Need::CgroupV1(Controller::Memory)]]),
    Experiment::new("cg.cgexec-places-process", cgexec_places_process)
        .asserts("cgexec -g memory:GROUP (and writing cgroup.procs then exec) puts the process in GROUP: /proc/PID/cgroup names it, cgroup.procs lists it")
        .anchor("kselftest test_cgcore_proc_migration")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE, cmd::CGEXEC]),
    Experiment::new("cg.oom-kill-at-limit", oom_kill_at_limit)
        .asserts("allocating 32 MiB under an 8 MiB limit (no swap escape): SIGKILL (shell 137, waitpid signal 9), oom_kill +1 per kill, peak usage <= limit")
        .anchor("kselftest test_memcg_oom_events").anchor("LTP memcg_control")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM])
        .control("the same allocation under a 256 MiB limit"),
    Experiment::new("cg.cgdelete", cgdelete)
        .asserts("rmdir of a group with a live task fails with EBUSY, succeeds once it exited; cgdelete moves the task to the parent on v1, fails busy on v2 (no internal processes) until it exited")
        .anchor("kselftest test_cgcore_destroy")
        .needs(needs![ROOT, crate::needs::kc::MEMCG, MEM, cmd::CGCREATE, cmd::CGEXEC, cmd::CGDELETE]),
    Experiment::new("cg.pids-max", pids_max)
        .asserts("with pids.max=5 the group's 6th process cannot be forked (EAGAIN); pids.events max rises by 1")
        .anchor("kselftest test_pids_max").anchor("kselftest test_pids_events").anchor("LTP pids.sh").anchor("youki cgroup_v1_pids").anchor("runtime-tools linux_cgroups_pids")
        .needs(needs![ROOT, crate::needs::kc::CGROUP_PIDS, &[Need::Cgroup(Controller::Pids)]]),
    Experiment::new("cg.cpu-quota", cpu_quota)
        .asserts("a busy child under a 10% CFS quota (1000/10000 us) is throttled (nr_throttled > 0) and gets <= 15% of a CPU over 150 ms (15 periods)")
        .anchor("youki cgroup_v1_cpu").anchor("youki cgroup_v2_cpu").anchor("runtime-tools linux_cgroups_cpus")
        .needs(needs![ROOT, crate::needs::kc::CFS_BANDWIDTH, &[Need::Cgroup(Controller::Cpu)]])
        .control("no quota (side by side with an unquota'd twin, under the same load)"),
    Experiment::new("cg.freezer", freezer)
        .asserts("a busy child in a frozen suite group (v1 freezer.state FROZEN, v2 cgroup.freeze 1 and cgroup.events frozen 1; every form the host has) stops counting, a child joining it stops at once; v2 SIGKILL kills a frozen task (v1: recorded); thawing resumes the counter")
        .anchor("kselftest test_cgfreezer_simple").anchor("kselftest test_cgfreezer_migrate").anchor("LTP freezer")
        .needs(needs![ROOT, &[Need::Cgroup(Controller::Freezer)], crate::needs::kc::CGROUPS])
        .control("the group left unfrozen: its counter advances"),
    Experiment::new("cg.kill", kill)
        .asserts("writing 1 to v2 cgroup.kill SIGKILLs every task of the group and of its child group (a forking child included); cgroup.events then reads populated 0; a sibling group's task lives")
        .anchor("kselftest test_cgkill_simple").anchor("kselftest test_cgkill_tree").anchor("kselftest test_cgkill_forkbomb").anchor("kselftest test_cgcore_populated").anchor("LTP cgroup_core03")
        .needs(needs![ROOT, &[Need::CgroupV2, Need::Kernel(5, 14)], crate::needs::kc::CGROUPS])
        .control("cgroup.kill written to the sibling group: the group's tasks live"),
    Experiment::new("cg.pids-hierarchical", pids_hierarchical)
        .asserts("under a parent with pids.max=4 and children allowed 10, the children together hold 4 tasks when a fork fails with EAGAIN; lowering a child's pids.max below its count is accepted, kills nothing and refuses the next fork")
        .anchor("LTP pids.sh")
        .needs(needs![ROOT, &[Need::Cgroup(Controller::Pids)], crate::needs::kc::CGROUPS, crate::needs::kc::CGROUP_PIDS])
        .control("the parent without a limit: a child reaches its own 10"),
    Experiment::new("cg.cpuset-affinity", cpuset_affinity)
        .asserts("a child in a suite cpuset with cpus=0 has sched_getaffinity {0} and Cpus_allowed_list 0 (cgexec -g cpuset: shows the same); sched_setaffinity to CPU 1 fails with EINVAL; moved out to a full cpuset it gets every online CPU")
        .anchor("LTP cpuset_base_ops").anchor("moby TestRunWithCpusetCpus")
        .needs(needs![ROOT, &[Need::Cgroup(Controller::Cpuset)], cmd::CGEXEC, crate::needs::kc::CGROUPS, crate::needs::kc::CPUSETS])
        .control("the same child outside the group: every online CPU"),
    Experiment::new("cg.oom-group", oom_group)
        .asserts("with memory.oom.group=1 one OOM (64 MiB under a 32 MiB memory.max, no swap) kills every task of the group (memory.events oom_kill counts them: >= 3) except one with oom_score_adj -1000")
        .anchor("kselftest test_memcg_oom_group_leaf_events").anchor("kselftest test_memcg_oom_group_score_events")
        .needs(needs![ROOT, &[Need::CgroupV2Ctrl(Controller::Memory)], crate::needs::kc::CGROUPS, crate::needs::kc::MEMCG])
        .control("memory.oom.group=0: only the allocating task dies"),
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

/// A new group of this experiment in `h`, removed at teardown (on v2's
/// core hierarchy nothing is delegated: the files used there are core).
/// Other sections' cgroup rows (cgroupns., esc.) make theirs with it too.
pub(crate) fn suite_group(ctx: &mut Ctx, h: &Hierarchy, role: &str) -> Result<Group, Problem> {
    let name = ctx.name(role);
    let g = h.group(&name);
    defer_destroy(ctx, &g);
    h.create(&name)?;
    Ok(g)
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
