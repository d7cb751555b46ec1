//! The uts, ipc and time rows past the seed's lsns table: domainname and
//! setns (youki domainname, LTP setns02), SysV semaphores, message queues
//! and the mqueue fs per ipc ns (LTP sem_nstest, mesgq_nstest, mqns_02-04),
//! and CLOCK_BOOTTIME through procfs (kselftest timens, LTP timens01).

use crate::experiment::{Ctx, Outcome, Problem, Variant};
use crate::experiments::helper_reply;
use crate::helper::uts_ipc_time::{IpcReport, TimensReport, UtsReport};
use crate::namespaces;
use crate::process::run;
use crate::{broken, check, check_eq};

fn host_names() -> (String, String) {
    let read = |f: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/domainname"),
    )
}

// ---------------------------------------------------------------------------
// uts.domainname-and-setns

/// The body of `uts.domainname-and-setns`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn domainname_and_setns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let host = host_names();
    let inner = if v.isolated() { "yes" } else { "no" };
    let r: UtsReport = helper_reply(ctx, &["uts-domainname", "--inner", inner])?;
    ctx.observe("outer", &r.outer);
    ctx.observe("inner", &r.inner);
    ctx.observe("after_setns", &r.after_setns);
    check_eq!(
        r.after_setns,
        r.outer,
        "names after setns back into the outer uts ns"
    );
    check_eq!(
        r.inner.1,
        "inner.isoc",
        "domainname inside after setdomainname"
    );
    let cli = domainname_cli(ctx, v)?;
    ctx.observe("cli_inner_outer", &cli);
    check_eq!(
        cli,
        ["inner.isoc", "outer.isoc"],
        "`hostname -y` inside, then in the outer shell"
    );
    let after = host_names();
    ctx.observe("host_names_unchanged", after == host);
    check_eq!(after, host, "the host's hostname and domainname");
    Ok(())
}

/// `unshare --uts sh -c '… unshare --uts sh -c "hostname -y inner.isoc" …'`.
fn domainname_cli(ctx: &Ctx, v: Variant) -> Result<Vec<String>, Problem> {
    let guard = namespaces::sh_guard(&["uts"]);
    let nest = if v.isolated() {
        "unshare --uts sh -c"
    } else {
        "sh -c"
    };
    let inner = format!("{guard}hostname -y inner.isoc && hostname -y");
    let script = format!(
        "{guard}hostname isoc-outer && hostname -y outer.isoc && {nest} \"$INNER\" && hostname -y"
    );
    let r = run(ctx
        .cmd("unshare")
        .env("INNER", inner)
        .args(["--uts", "sh", "-c", &script]))?;
    if !r.success() {
        broken!(
            "unshare --uts: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    Ok(r.stdout.lines().map(str::to_string).collect())
}

// ---------------------------------------------------------------------------
// ipc.sem-msg-mqueuefs

/// The SysV key both namespaces use ("ISOC"): only ever made inside a suite ipc ns.
const IPC_KEY: &str = "1230196547";

/// The body of `ipc.sem-msg-mqueuefs`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn sem_msg_mqueuefs(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = ctx.scratch()?.join("mqueue");
    std::fs::create_dir_all(&dir)?;
    let queue = format!("/{}", ctx.name("mq"));
    let share = if v.isolated() { "no" } else { "yes" };
    let d = dir.to_string_lossy().into_owned();
    let args = [
        "ipc-objects",
        "--key",
        IPC_KEY,
        "--dir",
        &d,
        "--queue",
        &queue,
        "--share",
        share,
    ];
    let r: IpcReport = helper_reply(ctx, &args)?;
    let own = queue.trim_start_matches('/').to_string();
    ctx.observe("sem_lookup_from_b", &r.sem_lookup);
    ctx.observe("msg_lookup_from_b", &r.msg_lookup);
    ctx.observe("b_got_its_own_sem", r.b_own_sem);
    ctx.observe("mqueue_a_is_exactly_its_queue", r.mqueue_a == [own.clone()]);
    ctx.observe("mqueue_b_count", r.mqueue_b.len());
    check_eq!(
        (r.sem_lookup.as_deref(), r.msg_lookup.as_deref()),
        (Some("ENOENT"), Some("ENOENT")),
        "semget/msgget of A's key from B"
    );
    check!(
        r.b_own_sem,
        "B's semget(IPC_CREAT) did not give a set of its own"
    );
    check_eq!(r.mqueue_a, vec![own.clone()], "the mqueue fs mounted in A");
    check!(!r.mqueue_b.contains(&own), "B's mqueue fs lists A's queue");
    let seen = sysv_cli(ctx, v)?;
    ctx.observe("cli_objects_seen_from_b", seen);
    check_eq!(
        seen,
        0,
        "`ipcs -s -q` in a second ipc ns, of the 2 objects ipcmk made in the first"
    );
    Ok(())
}

/// The CLI layer: `ipcmk -S 1`, `ipcmk -Q` in a new ipc ns, then `ipcs`
/// from a nested one (the control: from the same one); the ids it lists.
fn sysv_cli(ctx: &Ctx, v: Variant) -> Result<usize, Problem> {
    let nest = if v.isolated() { "unshare --ipc " } else { "" };
    let script = format!(
        "{}ipcmk -S 1 >/dev/null && ipcmk -Q >/dev/null && {nest}ipcs -s -q",
        namespaces::sh_guard(&["ipc"])
    );
    let r = run(ctx.cmd("unshare").args(["--ipc", "sh", "-c", &script]))?;
    if !r.success() {
        broken!(
            "unshare --ipc: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    Ok(r.stdout.lines().filter(|l| l.starts_with("0x")).count())
}

// ---------------------------------------------------------------------------
// time.boottime-procfs

/// Ten days, the catalogue's CLOCK_BOOTTIME offset.
const OFFSET_S: i64 = 864_000;

/// The body of `time.boottime-procfs`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn boottime_procfs(ctx: &mut Ctx, v: Variant) -> Outcome {
    let off = OFFSET_S.to_string();
    let mut args = vec!["timens-boottime"];
    if v.isolated() {
        args.extend(["--offset", &off]);
    }
    let r: TimensReport = helper_reply(ctx, &args)?;
    let (child_up, before, after) = r.uptime;
    ctx.measure("uptime_child_host_before_after", r.uptime);
    let btime_shift = r.btime.1 - r.btime.0;
    ctx.observe("btime_host_minus_child", btime_shift);
    ctx.observe("bad_lines", &r.bad_lines);
    ctx.observe("write_after_entry", &r.late_write);
    let shift = child_up - before;
    check!(
        shift >= OFFSET_S as f64 && shift <= OFFSET_S as f64 + (after - before) + 1.0,
        "child uptime {child_up} vs host {before}..{after}: not {OFFSET_S} s ahead"
    );
    // /proc/stat btime follows the time ns from 5.11 ("time namespace aware
    // system boot time"); 5.10 shows the host's: recorded, not asserted.
    if crate::host::HostFacts::get().kernel_version >= (5, 11, 0) {
        check_eq!(btime_shift, OFFSET_S, "host btime - child btime");
    }
    for (line, e) in &r.bad_lines {
        check_eq!(e.as_deref(), Some("EINVAL"), "offsets line {line:?}");
    }
    check!(
        r.late_write.is_some(),
        "offsets written after a task entered the ns were accepted"
    );
    boottime_cli(ctx, v)
}

/// `unshare --time --boottime 864000 --fork cat /proc/uptime`, against the host's.
fn boottime_cli(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut c = ctx.cmd("unshare");
    c.args(["--time", "--fork"]);
    if v.isolated() {
        c.args(["--boottime", &OFFSET_S.to_string()]);
    }
    let before = host_uptime()?;
    let r = run(c.args(["cat", "/proc/uptime"]))?;
    let after = host_uptime()?;
    if !r.success() {
        broken!(
            "unshare --time: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let inside: f64 = r.stdout.split_whitespace().next().unwrap_or("").parse()?;
    let shift = inside - before;
    ctx.measure("cli_uptime_shift", shift);
    check!(
        shift >= OFFSET_S as f64 && shift <= OFFSET_S as f64 + (after - before) + 1.0,
        "unshare --boottime: uptime {inside} inside vs {before}..{after} on the host"
    );
    Ok(())
}

fn host_uptime() -> anyhow::Result<f64> {
    let t = crate::process::read("/proc/uptime")?;
    Ok(t.split_whitespace().next().unwrap_or("").parse()?)
}

// ---------------------------------------------------------------------------
// cgroupns.lesser-ns-open

/// Whether the cgroup2 mount at `root` has `nsdelegate`: only then is a
/// cgroup namespace a delegation boundary for migrations.
fn nsdelegate(root: &std::path::Path) -> anyhow::Result<bool> {
    let mi = crate::process::read("/proc/self/mountinfo")?;
    Ok(mi.lines().any(|l| {
        let Some((pre, post)) = l.split_once(" - ") else {
            return false;
        };
        let mnt = pre.split_whitespace().nth(4).map(std::path::Path::new);
        let mut f = post.split_whitespace();
        mnt == Some(root)
            && f.next() == Some("cgroup2")
            && f.nth(1)
                .is_some_and(|o| o.split(',').any(|x| x == "nsdelegate"))
    }))
}

/// The body of `cgroupns.lesser-ns-open`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn lesser_ns_open(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::cgroups::{proc_cgroup_path, Hierarchy};
    use crate::experiments::cgroup::suite_group;
    let h = Hierarchy::v2_core().ok_or_else(|| Problem::Unmet("no cgroup2 mount".into()))?;
    if !nsdelegate(&h.root)? {
        return Err(Problem::Unmet(format!(
            "the cgroup2 mount {} has no nsdelegate option, so cgroup namespaces are no delegation boundary here; the suite does not remount the host's hierarchy",
            h.root.display()
        )));
    }
    let a = suite_group(ctx, &h, "nsa")?;
    let b = suite_group(ctx, &h, "nsb")?;
    let mut c = ctx.helper();
    c.arg("cgns-open")
        .arg("--a")
        .arg(a.procs_file())
        .arg("--b")
        .arg(b.procs_file());
    if v.isolated() {
        c.arg("--newns");
    }
    let r = run(&mut c)?;
    if !r.success() {
        broken!(
            "cgns-open: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let m: crate::helper::cgcore::CgMigrate = serde_json::from_str(r.stdout.trim())?;
    let now = proc_cgroup_path(&m.cgroup_after.join("\n"), h.controller.name(), h.version);
    let in_a = now.as_deref() == Some(format!("/{}", a.relative()).as_str());
    ctx.observe("write_errno", &m.write_errno);
    ctx.observe("stayed_in_a", in_a);
    check_eq!(
        m.write_errno.as_deref(),
        Some("ENOENT"),
        "writing itself through B's procs fd opened in a cgroup ns rooted at A"
    );
    check!(in_a, "the child is in {now:?}, not A");
    Ok(())
}
