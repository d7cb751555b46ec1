//! Catalogue section 5: cgroups (memory, pids, cpu), through the seed's
//! libcgroup tools and through the cgroup filesystem directly, in the
//! host's own form (v1 or v2, per controller on a hybrid host). The
//! version-specific files are behind `crate::cgroups`.

use crate::cgroups::{self, Group, Hierarchy, Limit, MemoryCounters, Version};
use crate::experiment::{Ctx, Experiment, Outcome, Problem, Section, Variant};
use crate::helper::cgroup::{CgBurn, CgFork};
use crate::host::HostFacts;
use crate::needs::{Controller, Need, Tool};
use crate::process::{run, wait_until, Spawned};
use crate::{broken, check, check_eq};
use serde_json::{json, Value};
use std::time::Duration;

const MEM: Need = Need::Cgroup(Controller::Memory);

pub static EXPERIMENTS: &[Experiment] = &[
    Experiment {
        id: "cg.create-group",
        section: Section::Cgroup,
        asserts: "cgcreate -a USER makes the group directory with the memory controller's files, owned by USER; a bare mkdir gets the same files from the kernel, owned by the creator",
        needs: &[Need::Root, MEM, Need::Tool(Tool::Cgcreate)],
        control: None,
        body: create_group,
        exclusive: None,
    },
    Experiment {
        id: "cg.limit-readback",
        section: Section::Cgroup,
        asserts: "echo 10000000 > the memory limit file reads back the page-rounded value (9998336 with 4 KiB pages)",
        needs: &[Need::Root, MEM],
        control: None,
        body: limit_readback,
        exclusive: None,
    },
    Experiment {
        id: "cg.limit-parsing",
        section: Section::Cgroup,
        asserts: "the memory limit parse: page round-down (page+1 -> page, page-1 -> 0), the unlimited value accepted, `1.0` `1xx` `xx` EINVAL with the old limit kept",
        needs: &[Need::Root, MEM],
        control: None,
        body: limit_parsing,
        exclusive: None,
    },
    Experiment {
        id: "cg.kmem-limit",
        section: Section::Cgroup,
        asserts: "writing memory.kmem.limit_in_bytes behaves as this kernel version documents (enforced / ENOTSUPP / absent / accepted without effect)",
        needs: &[Need::Root, Need::CgroupV1(Controller::Memory)],
        control: None,
        body: kmem_limit,
        exclusive: None,
    },
    Experiment {
        id: "cg.cgexec-places-process",
        section: Section::Cgroup,
        asserts: "cgexec -g memory:GROUP (and writing cgroup.procs then exec) puts the process in GROUP: /proc/PID/cgroup names it, cgroup.procs lists it",
        needs: &[
            Need::Root,
            MEM,
            Need::Tool(Tool::Cgcreate),
            Need::Tool(Tool::Cgexec),
        ],
        control: None,
        body: cgexec_places_process,
        exclusive: None,
    },
    Experiment {
        id: "cg.oom-kill-at-limit",
        section: Section::Cgroup,
        asserts: "allocating 64 MiB under an 8 MiB limit (no swap escape): SIGKILL (shell 137, waitpid signal 9), oom_kill +1 per kill, peak usage <= limit",
        needs: &[Need::Root, MEM],
        control: Some("the same allocation under a 256 MiB limit"),
        body: oom_kill_at_limit,
        exclusive: None,
    },
    Experiment {
        id: "cg.cgdelete",
        section: Section::Cgroup,
        asserts: "rmdir of a group with a live task fails with EBUSY, succeeds once it exited; cgdelete moves the task to the parent on v1, fails busy on v2 (no internal processes) until it exited",
        needs: &[
            Need::Root,
            MEM,
            Need::Tool(Tool::Cgcreate),
            Need::Tool(Tool::Cgexec),
            Need::Tool(Tool::Cgdelete),
        ],
        control: None,
        body: cgdelete,
        exclusive: None,
    },
    Experiment {
        id: "cg.pids-max",
        section: Section::Cgroup,
        asserts: "with pids.max=5 the group's 6th process cannot be forked (EAGAIN); pids.events max rises by 1",
        needs: &[Need::Root, Need::Cgroup(Controller::Pids)],
        control: None,
        body: pids_max,
        exclusive: None,
    },
    Experiment {
        id: "cg.cpu-quota",
        section: Section::Cgroup,
        asserts: "a busy child under a 10% CFS quota (10000/100000 us) is throttled (nr_throttled > 0) and gets <= 15% of a CPU over 1 s",
        needs: &[Need::Root, Need::Cgroup(Controller::Cpu)],
        control: Some("no quota (side by side with an unquota'd twin, under the same load)"),
        body: cpu_quota,
        exclusive: None,
    },
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

// ---------------------------------------------------------------------------
// cg.create-group

/// The controller files the host's form must have in every memory group.
fn memory_files(v: Version) -> &'static [&'static str] {
    match v {
        Version::V1 => &[
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.failcnt",
            "memory.oom_control",
        ],
        Version::V2 => &["memory.max", "memory.current", "memory.events"],
    }
}

/// Which of the group's memory files exist and who owns them.
fn inspect_ownership(g: &Group) -> anyhow::Result<Value> {
    let mut files = serde_json::Map::new();
    for f in memory_files(g.version()) {
        let owner = cgroups::owner(&g.file(f)).ok();
        files.insert((*f).into(), json!(owner));
    }
    Ok(json!({
        "dir_exists": g.path.is_dir(),
        "dir_owner": cgroups::owner(&g.path).ok(),
        "files": files,
        // -a leaves the tasks file to -t (root by default); recorded only.
        "tasks_owner": cgroups::owner(&g.file("tasks")).ok(),
    }))
}

fn owned_by(seen: &Value, uid: u32) -> bool {
    seen["dir_exists"] == json!(true)
        && seen["dir_owner"] == json!(uid)
        && seen["files"]
            .as_object()
            .is_some_and(|m| m.values().all(|o| *o == json!(uid)))
}

fn create_group(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let user = "nobody";
    let Some(u) = nix::unistd::User::from_name(user)? else {
        return Err(Problem::Unmet(format!("no user {user:?} on this host")));
    };
    let uid = u.uid.as_raw();
    ctx.observe("user", json!({ "name": user, "uid": uid }));

    // The seed: `cgcreate -a USER -g memory:NAME`.
    let g = cgcreate(ctx, "cgcreate", &["-a", user])?;
    let cli = inspect_ownership(&g)?;
    ctx.observe("cgcreate", &cli);

    // The same by hand: a bare mkdir. What is asserted is what the kernel
    // provides: it populates the new directory with the controller's files,
    // owned by the creator (root here), with nothing chowned by the suite.
    let g2 = new_group(ctx, Controller::Memory, "mkdir")?;
    let fs = inspect_ownership(&g2)?;
    ctx.observe("mkdir", &fs);

    check!(
        owned_by(&cli, uid),
        "cgcreate -a {user}: group {} is not as asked: {cli}",
        g.path.display()
    );
    check!(
        owned_by(&fs, 0),
        "mkdir: the kernel did not give group {} the memory controller's files, owned by the creator: {fs}",
        g2.path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.limit-readback

fn limit_readback(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "limit")?;
    let file = g.file(g.memory_limit_file());
    let written = 10_000_000u64;
    let want = cgroups::page_rounded(written, page());
    ctx.observe("file", file.display().to_string());
    ctx.observe("written", written);
    ctx.observe("page_size", page());
    ctx.observe("expected", want);

    // The seed's way: a shell's echo into the file.
    let r = run(ctx
        .cmd("sh")
        .args(["-c", "echo 10000000 > \"$0\""])
        .arg(&file))?;
    check!(
        r.success(),
        "echo > {}: {}",
        file.display(),
        r.stderr.trim()
    );
    let by_shell = g.memory_limit()?;
    ctx.observe("read_after_echo", by_shell);

    // write(2) of the bare number after resetting to unlimited.
    g.set_memory_limit(Limit::Max)?;
    g.write(g.memory_limit_file(), &written.to_string())?;
    let by_write = g.memory_limit()?;
    ctx.observe("read_after_write", by_write);

    check_eq!(by_shell, Limit::Value(want), "limit read back after echo");
    check_eq!(
        by_write,
        Limit::Value(want),
        "limit read back after write(2)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.limit-parsing

/// What a limit write should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    Reads(Limit),
    Einval,
}

/// The catalogue's cases (LTP memcg_limit_in_bytes), computed from the page
/// size and phrased in the host's form.
pub fn parse_cases(v: Version, page: u64) -> Vec<(String, Parse)> {
    let mut c = vec![
        ((page + 1).to_string(), Parse::Reads(Limit::Value(page))),
        ((page - 1).to_string(), Parse::Reads(Limit::Value(0))),
        ("1".into(), Parse::Reads(Limit::Value(0))),
        ("1.0".into(), Parse::Einval),
        ("1xx".into(), Parse::Einval),
        ("xx".into(), Parse::Einval),
    ];
    match v {
        Version::V1 => c.push(("-1".into(), Parse::Reads(Limit::Max))),
        Version::V2 => {
            c.push(("max".into(), Parse::Reads(Limit::Max)));
            // v2 compares against "max" only: "-1" is no number to memparse.
            c.push(("-1".into(), Parse::Einval));
        }
    }
    c
}

fn limit_parsing(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "parse")?;
    let v = g.version();
    let base = Limit::Value(8 << 20);
    let mut seen = serde_json::Map::new();
    let mut wrong = Vec::new();
    for (input, want) in parse_cases(v, page()) {
        g.set_memory_limit(base)?;
        let res = g.write(g.memory_limit_file(), &input);
        let read = g.memory_limit()?;
        let got = match &res {
            Ok(()) => Parse::Reads(read),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Parse::Einval,
            Err(e) => broken!("writing {input:?}: unexpected {e}"),
        };
        seen.insert(
            input.clone(),
            json!({
                "errno": res.as_ref().err().map(errno_of),
                "read_back": read,
            }),
        );
        if got != want {
            wrong.push(format!("{input:?}: got {got:?}, expected {want:?}"));
        }
        // A refused write must leave the old limit in place.
        if got == Parse::Einval && read != base {
            wrong.push(format!(
                "{input:?} was refused but the limit changed from {base:?} to {read:?}"
            ));
        }
    }
    ctx.observe("version", v);
    ctx.observe("cases", Value::Object(seen));
    check!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.kmem-limit

/// What writing 10000000 to `memory.kmem.limit_in_bytes` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kmem {
    /// The file does not exist.
    Absent,
    /// The write failed with ENOTSUPP (524, kernel-internal: "Unknown error 524").
    RefusedEnotsupp,
    /// The write failed with another error.
    RefusedOther,
    /// Accepted, and the page-rounded limit reads back.
    Enforced,
    /// Accepted, and the limit still reads unlimited.
    NoEffect,
    /// Accepted, some other value reads back.
    AcceptedOther,
}

const ENOTSUPP: i32 = 524;

/// What the kernel documents for its version (Documentation/admin-guide/
/// cgroup-v1/memory.rst and the commits behind it):
/// - before 5.16 the kmem limit is set and enforced (deprecated since 5.4);
/// - 5.16 (58056f77502f) writes fail with ENOTSUPP;
/// - 6.1 (86327e8eb94c) drops the file;
/// - 6.6 (4597648fddea, backported to 6.1.y / 6.5.y stable) brings it back
///   as a no-op that warns once: any write succeeds and changes nothing.
pub fn kmem_documented(ver: (u32, u32, u32)) -> &'static [Kmem] {
    let (a, b, _) = ver;
    let v = (a, b);
    if v < (5, 16) {
        &[Kmem::Enforced]
    } else if v < (6, 1) {
        &[Kmem::RefusedEnotsupp]
    } else if v < (6, 6) {
        // Which 6.1.y..6.5.y carry the backport is a stable-series detail.
        &[Kmem::Absent, Kmem::NoEffect]
    } else {
        &[Kmem::NoEffect]
    }
}

fn kmem_limit(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "kmem")?;
    let f = "memory.kmem.limit_in_bytes";
    let host = HostFacts::get();
    let written = 10_000_000u64;
    let outcome = if !g.has(f) {
        ctx.observe("errno", Value::Null);
        Kmem::Absent
    } else {
        let before = g.read(f)?.trim().to_string();
        // The seed's command, recorded next to the raw write.
        let r = run(ctx
            .cmd("sh")
            .args(["-c", "echo 10000000 > \"$0\""])
            .arg(g.file(f)))?;
        ctx.observe(
            "seed_echo",
            json!({ "status": r.shell_status(), "stderr": r.stderr.trim() }),
        );
        // Undo whatever the echo did before the raw write is judged.
        let _ = g.write(f, "-1");
        let res = g.write(f, &written.to_string());
        let after = g.read(f)?.trim().to_string();
        ctx.observe("before", &before);
        ctx.observe("read_back", &after);
        ctx.observe("errno", res.as_ref().err().map(errno_of));
        let shell_ok = r.success();
        if shell_ok != res.is_ok() {
            broken!(
                "the shell's echo (status {}) and write(2) ({res:?}) disagree",
                r.shell_status()
            );
        }
        match res {
            Err(e) if e.raw_os_error() == Some(ENOTSUPP) => Kmem::RefusedEnotsupp,
            Err(_) => Kmem::RefusedOther,
            Ok(()) if after == cgroups::page_rounded(written, page()).to_string() => Kmem::Enforced,
            Ok(()) if after == before => Kmem::NoEffect,
            Ok(()) => Kmem::AcceptedOther,
        }
    };
    let documented = kmem_documented(host.kernel_version);
    ctx.observe("kernel", &host.kernel);
    ctx.observe("outcome", outcome);
    ctx.observe("documented", documented);
    check!(
        documented.contains(&outcome),
        "kernel {}: memory.kmem.limit_in_bytes gave {outcome:?}, documented {documented:?}",
        host.kernel
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.cgexec-places-process

/// Where a parked process is, seen from /proc and from the group.
fn placement(ctx: &mut Ctx, key: &str, g: &Group, s: &mut Spawned) -> anyhow::Result<bool> {
    let pid = parked_pid(s)?;
    let in_proc = cgroups::process_group(pid, &g.hier)?;
    let procs = g.procs()?;
    let want = format!("/{}", g.relative());
    ctx.observe(
        key,
        json!({
            "pid": pid, "spawned_pid": s.pid(), "proc_cgroup": in_proc,
            "expected": want, "cgroup_procs": procs,
        }),
    );
    Ok(pid == s.pid() && in_proc.as_deref() == Some(want.as_str()) && procs.contains(&pid))
}

fn cgexec_places_process(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let exe = exe();
    // The seed: cgcreate, then cgexec -g memory:NAME CMD.
    let g = cgcreate(ctx, "cgexec", &[])?;
    let mut s =
        Spawned::start(
            ctx.cmd("cgexec")
                .args(["-g", &g.spec(), &exe, "helper", "cg-park"]),
        )?;
    let cli = placement(ctx, "cgexec", &g, &mut s)?;
    s.kill();

    // The same by hand: write our pid to cgroup.procs, then exec.
    let g2 = new_group(ctx, Controller::Memory, "procs")?;
    let procs = g2.procs_file().to_string_lossy().into_owned();
    let mut s2 = Spawned::start(ctx.helper().args([
        "cg-enter", "--procs", &procs, "--", &exe, "helper", "cg-park",
    ]))?;
    let fs = placement(ctx, "cgroup_procs_write", &g2, &mut s2)?;
    s2.kill();

    check!(
        cli,
        "cgexec -g {}: the process is not in the group",
        g.spec()
    );
    check!(
        fs,
        "write to {procs} then exec: the process is not in the group"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.oom-kill-at-limit

const OOM_ALLOC: u64 = 64 << 20;

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

fn oom_kill_at_limit(ctx: &mut Ctx, v: Variant) -> Outcome {
    let limit: u64 = if v.isolated() { 8 << 20 } else { 256 << 20 };
    let g = new_group(ctx, Controller::Memory, "oom")?;
    g.set_memory_limit(Limit::Value(limit))?;
    let guard = g.forbid_swap(limit)?;
    let read = g.memory_limit()?;
    ctx.observe("limit", limit);
    ctx.observe("limit_read_back", read);
    ctx.observe("allocation", OOM_ALLOC);
    ctx.observe("swap_guard", guard);
    let procs = g.procs_file().to_string_lossy().into_owned();
    let bytes = OOM_ALLOC.to_string();
    let c0 = g.memory_counters()?;

    // Through a shell, as a user sees it: `$?` of the killed child.
    let r = run(ctx
        .cmd("sh")
        .args([
            "-c",
            "\"$0\" helper cg-alloc --procs \"$1\" --bytes \"$2\"; echo \"status=$?\"",
        ])
        .args([&exe(), &procs, &bytes]))?;
    let shell_status: Option<i32> = r.stdout.lines().find_map(|l| {
        l.strip_prefix("status=")
            .and_then(|s| s.trim().parse().ok())
    });
    let c1 = if shell_status == Some(137) {
        counters_after_kill(&g, c0.oom_kill + 1)?
    } else {
        g.memory_counters()?
    };

    // Through waitpid(2): the signal itself.
    let r2 = run(ctx
        .helper()
        .args(["cg-alloc", "--procs", &procs, "--bytes", &bytes]))?;
    let c2 = if r2.signal == Some(libc::SIGKILL) {
        counters_after_kill(&g, c1.oom_kill + 1)?
    } else {
        g.memory_counters()?
    };
    ctx.observe("shell_status", shell_status);
    ctx.observe("waitpid", json!({ "code": r2.code, "signal": r2.signal }));
    ctx.measure("counters_before", &c0);
    ctx.measure("counters_after_shell_run", &c1);
    ctx.measure("counters_after_waitpid_run", &c2);

    let Some(status) = shell_status else {
        broken!("the shell printed no status: {:?} {:?}", r.stdout, r.stderr);
    };
    // The allocation either completes (0) or is killed (137 / SIGKILL);
    // anything else (125: the helper could not join the group) is a broken
    // step in either run, never the limit's doing.
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

/// "Peak usage never above the limit", or why it cannot be checked: cgroup
/// v2 has no `memory.peak` before 5.19, and that is said, not skipped.
pub fn peak_verdict(peak: Option<u64>, limit: u64) -> Result<String, String> {
    match peak {
        None => Ok("not checkable here: no peak usage file (cgroup v2 before 5.19)".into()),
        Some(p) if p <= limit => Ok(format!("peak {p} <= limit {limit}")),
        Some(p) => Err(format!("peak usage {p} above the limit {limit}")),
    }
}

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
    MovesTaskToParent,
    RefusedBusy,
}

pub fn cgdelete_live_task(v: Version) -> CgdeleteLive {
    match v {
        Version::V1 => CgdeleteLive::MovesTaskToParent,
        Version::V2 => CgdeleteLive::RefusedBusy,
    }
}

fn cgdelete(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let exe = exe();
    // The seed's cgdelete on a group with a live task.
    let g = cgcreate(ctx, "cgdel", &[])?;
    let expected = cgdelete_live_task(g.version());
    let mut s =
        Spawned::start(
            ctx.cmd("cgexec")
                .args(["-g", &g.spec(), &exe, "helper", "cg-park"]),
        )?;
    let pid = parked_pid(&mut s)?;
    let r = run(ctx.cmd("cgdelete").arg(g.spec()))?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    let now_in = cgroups::process_group(pid, &g.hier).ok().flatten();
    let exists_after = g.path.exists();
    s.kill();
    // Once the task is gone, cgdelete removes what is left (v2).
    let mut after_exit = Value::Null;
    if exists_after {
        let mut last = None;
        let gone = wait_until(Duration::from_secs(5), || {
            last = run(ctx.cmd("cgdelete").arg(g.spec())).ok();
            !g.path.exists()
        });
        after_exit = json!({
            "removed": gone,
            "status": last.as_ref().map(|r| r.shell_status()),
            "stderr": last.as_ref().map(|r| r.stderr.trim().to_string()),
        });
    }
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

    // The kernel's answer: rmdir(2) while a task lives in the group.
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

    check_eq!(
        got,
        Some(expected),
        "cgdelete {} with a live task",
        g.spec()
    );
    match expected {
        CgdeleteLive::MovesTaskToParent => {
            let parent = format!("/{}", cgroups::SUITE_PARENT);
            check_eq!(
                now_in.as_deref(),
                Some(parent.as_str()),
                "cgroup of the task after cgdelete"
            );
        }
        CgdeleteLive::RefusedBusy => {
            let own = format!("/{}", g.relative());
            check_eq!(
                now_in.as_deref(),
                Some(own.as_str()),
                "cgroup of the task after the refused cgdelete"
            );
            check!(
                after_exit["removed"] == json!(true),
                "cgdelete after the task exited: {after_exit}"
            );
        }
    }
    check_eq!(
        busy.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(libc::EBUSY),
        "rmdir of a group with a live task"
    );
    check!(
        exists_while_busy && listed,
        "the busy group vanished or lost its task"
    );
    check!(removed, "rmdir after the task exited: {last:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.pids-max

const PIDS_MAX: u64 = 5;

fn pids_max(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Pids, "pids")?;
    g.set_pids_max(Limit::Value(PIDS_MAX))?;
    let read = g.pids_max()?;
    let before = g.pids_max_events()?;
    let procs = g.procs_file().to_string_lossy().into_owned();
    let r = run(ctx
        .helper()
        .args(["cg-fork", "--procs", &procs, "--max", "64"]))?;
    if !r.success() {
        broken!("cg-fork: status {}: {}", r.shell_status(), r.stderr.trim());
    }
    let out: CgFork = serde_json::from_str(r.stdout.trim())?;
    let after = g.pids_max_events()?;
    ctx.observe("pids_max", read);
    ctx.observe("fork", &out);
    ctx.measure("events_max_before", before);
    ctx.measure("events_max_after", after);
    let forked = out.forked as u64;
    check_eq!(
        out.errno.as_deref(),
        Some("EAGAIN"),
        "errno of the refused fork"
    );
    // The forking helper is the group's first process.
    check_eq!(
        forked + 1,
        PIDS_MAX,
        "processes in the group when fork failed"
    );
    check_eq!(after - before, 1, "pids.events max rise");
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.cpu-quota

const PERIOD_US: u64 = 100_000;
const QUOTA_US: u64 = 10_000;
const CPU_WEIGHT: u64 = 16;

/// Starts `cg-burn` for 1 s in the group whose procs file is `procs`.
fn start_burn(ctx: &Ctx, procs: &std::path::Path) -> anyhow::Result<std::process::Child> {
    let procs = procs.to_string_lossy().into_owned();
    Ok(ctx
        .helper()
        .args(["cg-burn", "--procs", &procs, "--ms", "1000"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?)
}

/// The CPU share (cpu time / wall time) a `cg-burn` child reports.
fn burn_share(child: std::process::Child) -> Result<(f64, CgBurn), Problem> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        broken!(
            "cg-burn: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let j: CgBurn = serde_json::from_slice(&out.stdout)?;
    let share = j.cpu_us / j.wall_us.max(1.0);
    Ok((share, j))
}

fn cpu_quota(ctx: &mut Ctx, v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Cpu, "cpu")?;
    // The reference: an unquota'd twin that burns at the same moment, so
    // both see the same load however busy the host is (a shared 2-core
    // machine, concurrent runs). The weight gives the suite's groups the
    // CPU over other work; the quota caps a child whatever its weight.
    let twin = new_group(ctx, Controller::Cpu, "twin")?;
    g.hier.parent_group().set_cpu_weight_factor(CPU_WEIGHT)?;
    g.set_cpu_weight_factor(CPU_WEIGHT)?;
    twin.set_cpu_weight_factor(CPU_WEIGHT)?;
    let quota = v.isolated().then_some(QUOTA_US);
    g.set_cpu_quota(quota, PERIOD_US)?;
    let read = g.cpu_quota()?;
    let before = g.cpu_stat()?;
    let (a, b) = (
        start_burn(ctx, &g.procs_file())?,
        start_burn(ctx, &twin.procs_file())?,
    );
    let ((share, out), (twin_share, twin_out)) = (burn_share(a)?, burn_share(b)?);
    let after = g.cpu_stat()?;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    ctx.observe(
        "quota_read_back",
        json!({ "quota_us": read.0, "period_us": read.1 }),
    );
    ctx.observe("child", &out);
    ctx.measure("twin", &twin_out);
    ctx.measure("cpu_share", round(share));
    ctx.measure("twin_cpu_share", round(twin_share));
    ctx.measure("cpu_stat_before", &before);
    ctx.measure("cpu_stat_after", &after);
    if v.isolated() && twin_share <= 0.15 {
        broken!("the unquota'd twin got only {twin_share:.3} of a CPU: the host is too busy to see a 10% cap");
    }
    check!(
        after.nr_throttled > before.nr_throttled,
        "nr_throttled did not rise ({} -> {})",
        before.nr_throttled,
        after.nr_throttled
    );
    let (within_quota, below_twin) = (share <= 0.15, share < twin_share);
    check!(
        within_quota,
        "the child got {share:.3} of a CPU (quota 10%)"
    );
    check!(
        below_twin,
        "the child got {share:.3} of a CPU, its unquota'd twin under the same load {twin_share:.3}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn v1_parse_cases_match_the_catalogue_on_4k_pages() {
        let c = parse_cases(Version::V1, 4096);
        let get = |k: &str| c.iter().find(|(i, _)| i == k).map(|(_, p)| p.clone());
        assert_eq!(get("4097"), Some(Parse::Reads(Limit::Value(4096))));
        assert_eq!(get("4095"), Some(Parse::Reads(Limit::Value(0))));
        assert_eq!(get("-1"), Some(Parse::Reads(Limit::Max)));
        for bad in ["1.0", "1xx", "xx"] {
            assert_eq!(get(bad), Some(Parse::Einval), "{bad}");
        }
        assert_eq!(get("max"), None);
    }

    #[test]
    fn v2_parse_cases_use_max() {
        let c = parse_cases(Version::V2, 65536);
        assert!(c.contains(&("max".into(), Parse::Reads(Limit::Max))));
        assert!(c.contains(&("-1".into(), Parse::Einval)));
        assert!(c.contains(&("65537".into(), Parse::Reads(Limit::Value(65536)))));
    }

    #[rstest]
    #[case((5, 10, 0), &[Kmem::Enforced])]
    #[case((5, 15, 200), &[Kmem::Enforced])]
    #[case((5, 16, 0), &[Kmem::RefusedEnotsupp])]
    #[case((6, 0, 19), &[Kmem::RefusedEnotsupp])]
    #[case((6, 1, 0), &[Kmem::Absent, Kmem::NoEffect])]
    #[case((6, 5, 13), &[Kmem::Absent, Kmem::NoEffect])]
    #[case((6, 6, 0), &[Kmem::NoEffect])]
    #[case((6, 18, 44), &[Kmem::NoEffect])]
    fn kmem_documented_by_version(#[case] v: (u32, u32, u32), #[case] want: &[Kmem]) {
        assert_eq!(kmem_documented(v), want);
    }

    #[rstest]
    #[case(Version::V1, CgdeleteLive::MovesTaskToParent)]
    #[case(Version::V2, CgdeleteLive::RefusedBusy)]
    fn cgdelete_with_a_live_task(#[case] v: Version, #[case] want: CgdeleteLive) {
        assert_eq!(cgdelete_live_task(v), want);
    }

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

    #[test]
    fn ownership_check_needs_every_file() {
        let ok = json!({"dir_exists": true, "dir_owner": 65534,
                        "files": {"memory.max": 65534, "memory.events": 65534}});
        assert!(owned_by(&ok, 65534));
        let one_root = json!({"dir_exists": true, "dir_owner": 65534,
                              "files": {"memory.max": 0, "memory.events": 65534}});
        assert!(!owned_by(&one_root, 65534));
        let missing = json!({"dir_exists": true, "dir_owner": 65534,
                             "files": {"memory.max": null}});
        assert!(!owned_by(&missing, 65534));
    }
}
