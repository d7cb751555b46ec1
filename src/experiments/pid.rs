//! Catalogue section 1: the PID namespace.

use crate::experiment::{Ctx, Experiment, Outcome, Variant};
use crate::experiments::helper_reply;
use crate::helper::whoami::Whoami;
use crate::helper::{
    self,
    pid::{InitDeath, Orphan, Signals},
};
use crate::namespaces;
use crate::needs::{cmd, ROOT, USERNS};
use crate::process::{run, run_ok, wait_until, Spawned};
use crate::{broken, check, check_eq, needs};
use std::time::Duration;

mod nesting;

/// Section 1's rows (PID namespace), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("pid.init-is-pid-1", init_is_pid_1)
        .asserts("the first process of a new pid ns has getpid()==1, getppid()==0; `echo $$` prints 1")
        .anchor("LTP pidns01")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::UNSHARE])
        .control("unshare without --pid"),
    Experiment::new("pid.ps-sees-only-namespace", ps_sees_only_namespace)
        .asserts("`ps` and /proc inside list exactly the namespace's processes; the host sees many more")
        .anchor("LTP pidns03")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::UNSHARE, cmd::PS])
        .control("unshare --pid without --mount-proc"),
    Experiment::new("pid.ns-link-differs", ns_link_differs)
        .asserts("the child's /proc/<pid>/ns/pid inode differs from the host's; every other link equals the host's")
        .needs(needs![ROOT, crate::needs::kc::PID_NS])
        .control("the same child without a new pid ns"),
    Experiment::new("pid.nspid-translation", nspid_translation)
        .asserts("NSpid: in the host's /proc/<hostpid>/status reads `<hostpid> 1`")
        .needs(needs![ROOT, crate::needs::kc::PID_NS]),
    Experiment::new("pid.lsns-counts-processes", lsns_counts_processes)
        .asserts("lsns -t pid lists the new ns with NPROCS = its processes; a `sleep 60` entering it raises NPROCS by exactly 1")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::LSNS, cmd::NSENTER]),
    Experiment::new("pid.nsenter-joins", nsenter_joins)
        .asserts("nsenter --pid --mount --net gives the target's pid/mnt/net inodes, the namespace's process list and a small pid")
        .anchor("runtime-tools linux_ns_path")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::NSENTER]),
    Experiment::new("pid.init-death-kills-namespace", init_death_kills_namespace)
        .asserts("SIGKILL to the ns init kills every process of the ns; a later fork into it fails with ENOMEM")
        .anchor("LTP pidns05")
        .needs(needs![ROOT, crate::needs::kc::PID_NS]),
    Experiment::new("pid.init-ignores-unhandled-signals", init_ignores_unhandled_signals)
        .asserts("a handler-less ns init ignores SIGTERM/SIGKILL from inside and SIGTERM from the parent ns; SIGKILL from the parent kills it")
        .anchor("LTP pidns04")
        .needs(needs![ROOT, crate::needs::kc::PID_NS])
        .control("the same signals to a non-init process of the ns"),
    Experiment::new("pid.orphans-reparent-to-ns-init", orphans_reparent)
        .asserts("an orphan in the ns gets ppid 1 inside, and its host parent is the ns init, not the host's init")
        .needs(needs![ROOT, crate::needs::kc::PID_NS]),
    Experiment::new("pid.signals-cross-ns", signals_cross_ns)
        .asserts("from a new pid ns, kill() of a suite process outside fails with ESRCH and it lives (`unshare --fork --pid sh -c 'kill -9 PID'` too); a lone ns init's kill(-1, SIGKILL) is ESRCH; a signal from the parent ns arrives with si_pid 0, one from a child inside with the child's pid")
        .anchor("LTP pidns06").anchor("LTP pidns10").anchor("LTP pidns12").anchor("LTP pidns16")
        .needs(needs![ROOT, cmd::UNSHARE, crate::needs::kc::PID_NS])
        .control("the same sends without a new pid ns: the kill succeeds, si_pid is the sender's pid"),
    Experiment::new("pid.nesting-limits", nesting::nesting_limits)
        .asserts("32 pid namespaces nest and the 33rd unshare(CLONE_NEWPID) fails ENOSPC; user namespaces nest at least 32 deep and the next fails ENOSPC; nested unshare(1) agrees at and past each depth; both depths recorded")
        .anchor("LTP pidns32").anchor("LTP userns07")
        .needs(needs![ROOT, USERNS, cmd::UNSHARE, crate::needs::kc::PID_NS]),
];

mod cross_ns;
use cross_ns::signals_cross_ns;

/// Runs `isocheck helper whoami` inside `isocheck helper unshare ARGS`.
pub fn whoami_in(ctx: &Ctx, unshare_args: &[&str]) -> anyhow::Result<Whoami> {
    let exe = helper::helper_path();
    let mut c = ctx.helper();
    c.arg("unshare")
        .args(unshare_args)
        .arg("--")
        .arg(&exe)
        .args(["helper", "whoami"]);
    let out = run_ok(&mut c)?;
    Ok(serde_json::from_str(out.trim())?)
}

/// Starts `isocheck helper unshare --fork --print-pid ARGS -- CMD` and
/// returns it with the host pid of the process inside the namespaces.
pub fn start_inside(
    ctx: &Ctx,
    unshare_args: &[&str],
    cmd: &[&str],
) -> anyhow::Result<(Spawned, i32)> {
    let mut c = ctx.helper();
    c.args(["unshare", "--fork", "--print-pid"])
        .args(unshare_args)
        .arg("--")
        .args(cmd);
    let mut s = Spawned::start(&mut c)?;
    let pid = s.child_pid()?;
    Ok((s, pid))
}

fn init_is_pid_1(ctx: &mut Ctx, v: Variant) -> Outcome {
    // CLI layer: the seed's command.
    let mut args = vec!["--fork"];
    if v.isolated() {
        args.extend(["--pid", "--mount-proc"]);
    }
    let r = run(ctx
        .cmd("unshare")
        .args(&args)
        .args(["/bin/sh", "-c", "echo $$"]))?;
    if !r.success() {
        broken!("unshare {args:?} failed: {}", r.stderr.trim());
    }
    let shell_pid = r.stdout.trim().to_string();
    ctx.observe("echo_dollar_dollar", &shell_pid);

    // Kernel layer: unshare(2) + fork, getpid()/getppid() in the child.
    let ns: &[&str] = if v.isolated() {
        &["--ns", "pid,mnt", "--mount-proc"]
    } else {
        &["--fork"]
    };
    let me = whoami_in(ctx, ns)?;
    ctx.observe("pid_inside", me.pid);
    ctx.observe("ppid_inside", me.ppid);
    check_eq!(shell_pid.as_str(), "1", "`echo $$` inside");
    check_eq!(me.pid, 1, "getpid() inside");
    check_eq!(me.ppid, 0, "getppid() inside");
    Ok(())
}

fn host_pid_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

fn ps_sees_only_namespace(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut args = vec!["--fork", "--pid"];
    if v.isolated() {
        args.push("--mount-proc");
    }
    // `ps` is exec'd as the namespace's first process, so it sees itself only.
    let out = run_ok(
        ctx.cmd("unshare")
            .args(&args)
            .args(["ps", "-e", "-o", "pid="]),
    )?;
    let ps_pids: Vec<i32> = out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    ctx.observe("ps_pids_inside", &ps_pids);

    let ns: &[&str] = if v.isolated() {
        &["--ns", "pid,mnt", "--mount-proc"]
    } else {
        &["--ns", "pid"]
    };
    let me = whoami_in(ctx, ns)?;
    let proc_pids = me.proc_pids;
    ctx.observe("proc_pids_inside", &proc_pids);
    let host = host_pid_count();
    ctx.measure("host_pid_count", host);

    // The host's own view is the environment the comparison needs, not
    // the isolation.
    if host <= 3 {
        broken!("the host should see many processes, saw {host}");
    }
    check_eq!(ps_pids, vec![1], "pids `ps -e` lists inside");
    check_eq!(proc_pids, vec![1], "numeric entries of /proc inside");
    Ok(())
}

fn ns_link_differs(ctx: &mut Ctx, v: Variant) -> Outcome {
    let ns: &[&str] = if v.isolated() { &["--ns", "pid"] } else { &[] };
    let (_child, pid) = start_inside(ctx, ns, &["sleep", "60"])?;
    let host = namespaces::inodes("self");
    let inner = namespaces::inodes(&pid.to_string());
    // Inodes name this run's namespaces: which ones differ is the fact.
    ctx.measure("host", &host);
    ctx.measure("child", &inner);
    let differs: std::collections::BTreeMap<&String, bool> = inner
        .iter()
        .map(|(k, i)| (k, host.get(k) != Some(i)))
        .collect();
    ctx.observe("child_differs_from_host", &differs);

    // CLI layer: the seed's `ls -l /proc/{pid}/ns`.
    let listing = run_ok(ctx.cmd("ls").args(["-l", &format!("/proc/{pid}/ns")]))?;
    let from_ls: Vec<(String, u64)> = listing
        .lines()
        .filter_map(|l| l.split(" -> ").nth(1))
        .filter_map(|t| namespaces::parse_ns_link(t.trim()).map(|(k, i)| (k.to_string(), i)))
        .collect();
    check!(
        from_ls
            .iter()
            .any(|(k, i)| k == "pid" && Some(i) == inner.get("pid")),
        "`ls -l /proc/{pid}/ns` does not show the pid link readlink saw: {listing}"
    );
    for (kind, ino) in &host {
        if kind == "pid" {
            continue;
        }
        check_eq!(
            inner.get(kind),
            Some(ino),
            "{kind} namespace of the child vs the host"
        );
    }
    check!(
        inner.get("pid") != host.get("pid"),
        "pid namespace inode of the child equals the host's ({:?})",
        host.get("pid")
    );
    Ok(())
}

fn nspid_translation(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (_child, pid) = start_inside(ctx, &["--ns", "pid"], &["sleep", "60"])?;
    let status = procfs::process::Process::new(pid)?.status()?;
    let nspid = status.nspid.clone().unwrap_or_default();
    // The host pid names this run; the translation's shape is the fact.
    ctx.measure("host_pid", pid);
    ctx.measure("nspid", &nspid);
    ctx.observe("nspid_depth", nspid.len());
    ctx.observe("nspid_outer_is_host_pid", nspid.first() == Some(&pid));
    ctx.observe("nspid_inner", nspid.last());
    check_eq!(
        nspid,
        vec![pid, 1],
        "NSpid of the namespace's first process"
    );
    Ok(())
}

fn lsns_nprocs(ino: u64) -> anyhow::Result<Option<u64>> {
    Ok(namespaces::lsns("pid")?
        .into_iter()
        .find(|r| r.ns == ino)
        .map(|r| r.nprocs))
}

/// Processes whose pid namespace is `ino`, counted from /proc (the kernel
/// layer of what lsns's NPROCS column says).
fn procs_in_pid_ns(ino: u64) -> u64 {
    namespaces::pids_in_ns("pid", ino).len() as u64
}

fn lsns_counts_processes(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (_init, pid) = start_inside(ctx, &["--ns", "pid"], &["sleep", "60"])?;
    let ino = namespaces::inode(&pid.to_string(), "pid")?;
    let before = lsns_nprocs(ino)?;
    ctx.observe("nprocs_before", before);
    check_eq!(before, Some(1), "NPROCS of the new pid ns (lsns -t pid)");
    check_eq!(
        procs_in_pid_ns(ino),
        1,
        "processes in the ns counted from /proc"
    );

    // The seed's "run `sleep 60` inside": nsenter forks it into the ns.
    let target = pid.to_string();
    let _sleeper = Spawned::start(
        ctx.cmd("nsenter")
            .args(["-t", &target, "--pid", "--", "sleep", "60"]),
    )?;
    wait_until(Duration::from_secs(5), || procs_in_pid_ns(ino) >= 2);
    let after = lsns_nprocs(ino)?;
    ctx.observe("nprocs_after", after);
    ctx.observe("procs_from_proc_after", procs_in_pid_ns(ino));
    check_eq!(after, Some(2), "NPROCS after one `sleep 60` entered");
    check_eq!(
        procs_in_pid_ns(ino),
        2,
        "processes in the ns counted from /proc"
    );
    Ok(())
}

fn nsenter_joins(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (_init, pid) = start_inside(
        ctx,
        &["--ns", "pid,mnt,net", "--mount-proc"],
        &["sleep", "60"],
    )?;
    let target = namespaces::inodes(&pid.to_string());
    let exe = helper::helper_path();
    let t = pid.to_string();
    let out = run_ok(
        ctx.cmd("nsenter")
            .args(["-t", &t, "--pid", "--mount", "--net", "--"])
            .arg(&exe)
            .args(["helper", "whoami"]),
    )?;
    let me: Whoami = serde_json::from_str(out.trim())?;
    // The seed's own command, through a shell.
    let sh = run_ok(ctx.cmd("nsenter").args([
        "-t", &t, "--pid", "--mount", "--net", "/bin/sh", "-c", "echo $$",
    ]))?;
    ctx.measure("target_ns", &target);
    ctx.measure("entered_ns", &me.ns);
    let same: std::collections::BTreeMap<&String, bool> = target
        .iter()
        .map(|(k, i)| (k, me.ns.get(k) == Some(i)))
        .collect();
    ctx.observe("entered_same_ns_as_target", &same);
    ctx.observe("entered_pid", me.pid);
    ctx.observe("entered_proc_pids", &me.proc_pids);
    ctx.observe("sh_pid", sh.trim());
    for kind in ["pid", "mnt", "net"] {
        check_eq!(
            me.ns.get(kind).copied(),
            target.get(kind).copied(),
            "{kind} inode after nsenter"
        );
    }
    let own = me.pid;
    check!(
        (2..10).contains(&own),
        "pid inside should be small (2..10), got {own}"
    );
    check_eq!(
        me.proc_pids,
        vec![1, own],
        "/proc inside lists the ns init and itself"
    );
    let sh_pid: i64 = sh.trim().parse().unwrap_or(-1);
    check!(
        (2..10).contains(&sh_pid),
        "`echo $$` of the entered shell should be small, got {sh_pid}"
    );
    Ok(())
}

fn init_death_kills_namespace(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let r: InitDeath = helper_reply(ctx, &["pidns-init-death"])?;
    ctx.observe("result", &r);
    check_eq!(r.members_before, 3, "processes in the ns before the kill");
    check_eq!(
        r.init_status.as_str(),
        "killed by SIGKILL",
        "ns init's wait status"
    );
    check_eq!(
        r.members_alive_after,
        Vec::<i32>::new(),
        "ns members alive after init died"
    );
    check_eq!(
        r.fork_after.as_str(),
        "ENOMEM",
        "fork into the dead namespace"
    );
    Ok(())
}

fn init_ignores_unhandled_signals(ctx: &mut Ctx, v: Variant) -> Outcome {
    let target = if v.isolated() { "init" } else { "child" };
    let r: Signals = helper_reply(ctx, &["pidns-signals", target])?;
    ctx.observe("result", &r);
    check_eq!(
        r.survived_term_kill_from_inside,
        true,
        "{target} after SIGTERM+SIGKILL from inside"
    );
    check_eq!(
        r.survived_term_from_parent_ns,
        true,
        "{target} after SIGTERM from the parent ns"
    );
    check_eq!(
        r.sigkill_from_parent_ns.as_str(),
        "killed by SIGKILL",
        "{target} after SIGKILL from the parent ns"
    );
    Ok(())
}

fn orphans_reparent(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let r: Orphan = helper_reply(ctx, &["pidns-orphan"])?;
    // Host pids name this run; their relations are the facts.
    ctx.measure("result", &r);
    ctx.observe("orphan_ppid_inside", r.orphan_ppid_inside);
    ctx.observe(
        "orphan_host_parent_is_ns_init",
        r.orphan_host_ppid == Some(r.init_host_pid),
    );
    check_eq!(
        r.orphan_ppid_inside,
        Some(1),
        "getppid() of the orphan inside"
    );
    check!(
        r.orphan_host_ppid == Some(r.init_host_pid) && r.init_host_pid > 1,
        "the orphan's host parent should be the ns init {} (not the host's init), got {:?}",
        r.init_host_pid,
        r.orphan_host_ppid
    );
    Ok(())
}
