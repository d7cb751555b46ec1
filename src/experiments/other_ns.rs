//! Catalogue section 4: the other namespaces of the seed's `lsns` table.

use crate::experiment::{Ctx, Experiment, Outcome, Problem, Variant};
use crate::experiments::pid::{start_inside, whoami_in};
use crate::helper::other_ns::TryHost;
use crate::helper::whoami::Whoami;
use crate::namespaces;
use crate::needs::{cmd, Need, ROOT, USERNS};
use crate::process::{run, run_ok};
use crate::{broken, check, check_eq, needs};
use serde_json::{json, Value};
use std::collections::BTreeMap;

mod nsfs;
mod userns;

pub use nsfs::find_comm;
mod deeper;
use deeper::{boottime_procfs, domainname_and_setns, lesser_ns_open, sem_msg_mqueuefs};

/// Section 4's rows (UTS, IPC, user, cgroup and time namespaces), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("uts.hostname-isolated", hostname_isolated)
        .asserts("`hostname X` inside a new uts ns is seen inside, not on the host")
        .anchor("LTP utsname03").anchor("youki hostname").anchor("runtime-tools hostname")
        .needs(needs![ROOT, crate::needs::kc::UTS_NS, cmd::UNSHARE, cmd::HOSTNAME]),
    Experiment::new("ipc.sysv-isolated", sysv_isolated)
        .asserts("a SysV shm segment and a POSIX mqueue made in a new ipc ns are invisible on the host (ipcs, /proc/sysvipc, mq_open), and the host's own (made for the run) are invisible in a new ipc ns")
        .anchor("LTP shmnstest").anchor("LTP shmem_2nstest").anchor("LTP shm_comm").anchor("LTP mqns_01").anchor("LTP mqns_02")
        .needs(needs![ROOT, crate::needs::kc::IPC_NS, crate::needs::kc::SYSVIPC, cmd::IPCS, cmd::NSENTER, cmd::UNSHARE]),
    Experiment::new("user.uid-map", uid_map)
        .asserts("uid 0 inside maps to uid 100000 outside; unmapped ids show as 65534; caps inside do not work on host-owned resources")
        .anchor("LTP userns01").anchor("LTP userns02").anchor("youki uid_mappings").anchor("runtime-tools linux_uid_mappings").anchor("runtime-tools linux_gid_mappings")
        .needs(needs![ROOT, USERNS, cmd::UNSHARE]),
    Experiment::new("cgroupns.root-view", cgroupns_root_view)
        .asserts("/proc/self/cgroup inside a new cgroup ns shows / for the process's own group")
        .needs(needs![ROOT, crate::needs::kc::CGROUPS, crate::needs::kc::CGROUP_PIDS, cmd::UNSHARE, &[Need::Cgroup(crate::needs::Controller::Pids)]])
        .control("the same process in the same group without --cgroup"),
    Experiment::new("time.offsets", time_offsets)
        .asserts("a new time ns with a CLOCK_MONOTONIC offset (helper unshare(2) and unshare --monotonic alike) shifts that clock of the child by the offset, and neither boottime nor realtime")
        .anchor("LTP clock_gettime03").anchor("kselftest timens timens")
        .needs(needs![ROOT, crate::needs::kc::TIME_NS, &[Need::Kernel(5, 6)], cmd::UNSHARE]),
    Experiment::new("ns.lsns-types", lsns_types)
        .asserts("for each type a process unshared in it is listed by `lsns -t TYPE` with its own ns, and shares every other type with the host")
        .anchor("LTP userns05")
        .needs(needs![ROOT, crate::needs::kc::NAMESPACES, cmd::LSNS, &[Need::Kernel(5, 6)]]),
    Experiment::new("user.setgroups-deny", userns::setgroups_deny)
        .asserts("uid 100000's new user ns reads setgroups allow and cannot write its own gid_map (EPERM); after deny it can, then setgroups(2) and writing allow back fail EPERM (helper and unshare -r alike)")
        .anchor("LTP userns03").cve("CVE-2014-8989")
        .needs(needs![ROOT, USERNS, cmd::SETPRIV, cmd::UNSHARE, cmd::NSENTER])
        .control("real root writes the child's maps from the parent ns: setgroups stays allow and setgroups(2) inside succeeds"),
    Experiment::new("user.nested-map-ranges", userns::nested_map_ranges)
        .asserts("in a user ns nested in one mapped `0 100000 1000`, a uid_map of 6 extents (and of one) still maps the inner root to host uid 100000: opening a root-owned 0700 suite file fails EACCES (helper and nsenter/unshare alike; CVE-2018-18955)")
        .anchor("LTP userns08").cve("CVE-2018-18955")
        .needs(needs![ROOT, USERNS, cmd::UNSHARE, cmd::NSENTER])
        .control("real root opens the file"),
    Experiment::new("user.caps-scoped-to-own-netns", userns::caps_scoped_to_own_netns)
        .asserts("uid 0 of a new user+net ns (mapped to 100000) adds a veth pair and an iptables rule, opens a raw socket and sets SO_MARK in its own netns; uid 0 of a new user ns sharing a suite netns owned by the init user ns gets EPERM for each")
        .anchor("LTP tst_setup_netns")
        .needs(needs![ROOT, USERNS, cmd::SETPRIV, cmd::UNSHARE, cmd::IP, cmd::IPTABLES, crate::needs::kc::NET_NS, crate::needs::kc::VETH])
        .control("real root in that suite netns: the steps succeed"),
    Experiment::new("user.file-caps-namespaced", userns::file_caps_namespaced)
        .asserts("setcap cap_net_raw+ep by uid 0 of a user ns mapped to 100000 (setcap and the helper's setxattr) on a suite file writes a v3 security.capability with rootid 100000 (read from the host); exec of it by host uid 100000 gets no CAP_NET_RAW")
        .cve("CVE-2023-2640").cve("CVE-2023-32629")
        .needs(needs![ROOT, USERNS, cmd::SETPRIV, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::SETCAP, cmd::GETCAP])
        .control("the same setcap by real root: a v2 xattr, and the same exec gets CAP_NET_RAW"),
    Experiment::new("user.unprivileged-userns-policy", userns::unprivileged_userns_policy)
        .asserts("what uid 100000 gets from a new user+mnt ns (a full CapEff and a tmpfs mount as its root; helper and setpriv+unshare -Urm alike) matches the policy its knobs declare (unprivileged_userns_clone, max_user_namespaces, apparmor_restrict_unprivileged_userns, recorded); real root's same steps are the baseline")
        .needs(needs![ROOT, USERNS, cmd::SETPRIV, cmd::UNSHARE, cmd::MOUNT]),
    Experiment::new("uts.domainname-and-setns", domainname_and_setns)
        .asserts("setdomainname in a uts ns nested in a suite-made one is seen inside only: setns back to the outer ns (and the outer shell of `unshare --uts`) shows the outer hostname and domainname; the host's names are never written")
        .anchor("LTP utsname01").anchor("LTP utsname02").anchor("LTP setns02").anchor("youki domainname")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::HOSTNAME, crate::needs::kc::UTS_NS])
        .control("the inner step in the outer (suite-made) uts ns itself: the outer names change"),
    Experiment::new("ipc.sem-msg-mqueuefs", sem_msg_mqueuefs)
        .asserts("a SysV semaphore set and message queue with a fixed key made in ipc ns A are ENOENT from ipc ns B (B's semget gets its own set); an mqueue fs mounted in A lists exactly A's queue, one mounted in B not it; `ipcs` in a nested `unshare --ipc` lists none of what `ipcmk` made outside it")
        .anchor("LTP sem_nstest").anchor("LTP semtest_2ns").anchor("LTP sem_comm").anchor("LTP mesgq_nstest").anchor("LTP msg_comm").anchor("LTP mqns_03").anchor("LTP mqns_04")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::IPCS, cmd::IPCMK, crate::needs::kc::IPC_NS, crate::needs::kc::SYSVIPC, crate::needs::kc::POSIX_MQUEUE])
        .control("B shares A's ipc ns: it finds both objects"),
    Experiment::new("time.boottime-procfs", boottime_procfs)
        .asserts("with a CLOCK_BOOTTIME offset of +10 days a child's /proc/uptime is 10 days ahead of the host's (unshare --boottime too) and /proc/stat btime exactly 10 days earlier (kernel >= 5.11; recorded before); realtime offsets and nanoseconds outside [0, 1e9) are EINVAL; offsets cannot be written once a task entered")
        .anchor("kselftest timens procfs").anchor("LTP timens01").anchor("LTP sysinfo03")
        .needs(needs![ROOT, &[Need::Kernel(5, 6)], cmd::UNSHARE, crate::needs::kc::TIME_NS])
        .control("a time ns without the offset: uptime and btime equal the host's"),
    Experiment::new("ns.unshare-needs-cap", nsfs::unshare_needs_cap)
        .asserts("uid 65534 without capabilities or a user ns gets EPERM from unshare(2)/unshare(1) of each of mount, uts, ipc, net, pid, cgroup, time and from setns/nsenter into a suite netns; each flag with CLONE_NEWUSER succeeds")
        .anchor("LTP utsname04").anchor("LTP unshare02").anchor("LTP setns01")
        .needs(needs![ROOT, USERNS, cmd::IP, cmd::SETPRIV, cmd::UNSHARE, cmd::NSENTER])
        .control("real root: each flag alone and the setns succeed"),
    Experiment::new("ns.ioctl-hierarchy", nsfs::ioctl_hierarchy)
        .asserts("NS_GET_PARENT of a new user and pid ns gives the caller's, EPERM at its own top; NS_GET_USERNS of a uts ns made with a user ns gives that user ns; NS_GET_OWNER_UID the creator's uid 100000; NS_GET_NSTYPE names each type; ENOTTY on a non-ns fd; lsns PNS/ONS agree")
        .anchor("kselftest nsfs owner").anchor("kselftest nsfs pidns").anchor("LTP ioctl_ns01-07")
        .needs(needs![ROOT, USERNS, &[Need::Kernel(4, 11)], cmd::SETPRIV, cmd::UNSHARE, cmd::LSNS, crate::needs::kc::PID_NS, crate::needs::kc::UTS_NS]),
    Experiment::new("ns.pidfd-setns", nsfs::pidfd_setns)
        .asserts("setns(pidfd, NEWUTS|NEWIPC|NEWNET|NEWNS|NEWCGROUP) joins all of a suite target's namespaces at once (inodes equal, as one nsfd per type and nsenter give); an exited child's pidfd gives ESRCH and changes nothing; flags 0 give EINVAL; uid 0 of an unrelated user ns gets EPERM")
        .anchor("kselftest pidfd_setns_test")
        .needs(needs![ROOT, USERNS, &[Need::Kernel(5, 8)], cmd::NSENTER, crate::needs::kc::NET_NS, crate::needs::kc::UTS_NS, crate::needs::kc::IPC_NS]),
    Experiment::new("cgroupns.lesser-ns-open", lesser_ns_open)
        .asserts("a clone sharing a child's fd table, in a cgroup ns rooted at suite group A, opens B/cgroup.procs (B outside its root); the child's write of itself through that fd fails with ENOENT and it stays in A (cgroup2 with nsdelegate)")
        .anchor("LTP cgroup_core02").anchor("kselftest test_cgcore_lesser_ns_open").cve("CVE-2021-4197")
        .needs(needs![ROOT, &[Need::CgroupV2], crate::needs::kc::CGROUPS])
        .control("the fd opened from the initial cgroup ns: the write moves it to B"),
];

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hostname_isolated(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let before = host_hostname();
    let name = ctx.name("uts");
    let cli = run_ok(ctx.cmd("unshare").args([
        "--uts",
        "sh",
        "-c",
        &format!(
            "{}hostname {name} && hostname",
            namespaces::sh_guard(&["uts"])
        ),
    ]))?;
    let kernel = whoami_in(ctx, &["--ns", "uts", "--hostname", &name])?;
    let after = host_hostname();
    ctx.observe("inside_cli", cli.trim());
    ctx.observe("inside_kernel", &kernel.hostname);
    ctx.observe("host_changed", before != after);
    check_eq!(
        cli.trim(),
        name.as_str(),
        "`hostname` inside after `hostname X`"
    );
    check_eq!(
        kernel.hostname.as_str(),
        name.as_str(),
        "gethostname() inside after sethostname()"
    );
    check_eq!(after, before, "the host's hostname");
    Ok(())
}

/// Keys of SysV shm segments in `ipcs -m` output.
pub fn ipcs_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|k| k.starts_with("0x"))
        .map(str::to_lowercase)
        .collect()
}

/// Keys and a POSIX message queue name unique to this experiment's tag (a
/// SysV key cannot carry a name; never 0, IPC_PRIVATE).
fn ipc_names(tag: &str) -> (u32, u32, String) {
    let h = tag.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let low = h & 0x00ff_ffff;
    (0x1500_0000 | low, 0x1600_0000 | low, format!("/{tag}"))
}

/// SysV shm keys in the host's `/proc/sysvipc/shm` (kernel layer).
fn proc_shm_keys(text: &str) -> Vec<u32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k as u32)
        .collect()
}

/// A SysV segment and a POSIX message queue made in the host's ipc ns,
/// removed at teardown (IPC_RMID, mq_unlink).
fn host_ipc_objects(ctx: &mut Ctx, key: u32, mq: &str) -> anyhow::Result<()> {
    let id = crate::cleanup::create_tagged_shm(key, ctx.tag.as_str())
        .map_err(|e| anyhow::anyhow!("shmget on the host: {e}"))?;
    ctx.defer("remove the host's shm segment", move || {
        // SAFETY: removes the segment this experiment made.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    });
    let name = std::ffi::CString::new(mq)?;
    let fd = crate::helper::other_ns::mq_create(&name)
        .map_err(|e| anyhow::anyhow!("mq_open {mq} on the host: {e}"))?;
    // SAFETY: closes the descriptor just opened.
    unsafe { libc::mq_close(fd) };
    ctx.defer("unlink the host's message queue", move || {
        // SAFETY: unlinks the queue this experiment made.
        unsafe { libc::mq_unlink(name.as_ptr()) };
    });
    Ok(())
}

/// `mq-probe NAME` through `cmd`: "present" or the errno of mq_open.
fn mq_seen(cmd: &mut std::process::Command, mq: &str) -> anyhow::Result<String> {
    let helper = crate::helper::helper_path();
    Ok(run_ok(cmd.arg(&helper).args(["helper", "mq-probe", mq]))?
        .trim()
        .to_string())
}

fn sysv_isolated(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (key, host_key, mq) = ipc_names(ctx.tag.as_str());
    let (key_hex, host_hex) = (format!("0x{key:08x}"), format!("0x{host_key:08x}"));
    let inside_mq = format!("{mq}-inside");
    host_ipc_objects(ctx, host_key, &mq)?;
    let helper = crate::helper::helper_path().to_string_lossy().into_owned();
    let (_holder, pid) = start_inside(
        ctx,
        &["--ns", "ipc"],
        &[&helper, "helper", "shm-hold", &key.to_string(), &inside_mq],
    )?;
    let t = pid.to_string();
    // Wait for the segment through the namespace's own view: ipcs via nsenter.
    let mut inside = Vec::new();
    crate::process::wait_until(std::time::Duration::from_secs(5), || {
        inside = run_ok(ctx.cmd("nsenter").args(["-t", &t, "--ipc", "ipcs", "-m"]))
            .map(|o| ipcs_keys(&o))
            .unwrap_or_default();
        inside.contains(&key_hex)
    });
    let seen = json!({
        "inside": {"shm": inside, "mq_inside": mq_seen(ctx.cmd("nsenter").args(["-t", &t, "--ipc"]), &inside_mq)?},
        "host": {"shm": ipcs_keys(&run_ok(ctx.cmd("ipcs").arg("-m"))?),
                 "proc_shm": proc_shm_keys(&crate::experiment::read("/proc/sysvipc/shm")?),
                 "mq_inside": mq_seen(&mut ctx.cmd("env"), &inside_mq)?,
                 "mq_host": mq_seen(&mut ctx.cmd("env"), &mq)?},
        "fresh": {"shm": ipcs_keys(&run_ok(ctx.cmd("unshare").args(["--ipc", "ipcs", "-m"]))?),
                  "proc_shm": proc_shm_keys(&run_ok(ctx.cmd("unshare").args(["--ipc", "cat", "/proc/sysvipc/shm"]))?),
                  "mq_host": mq_seen(ctx.cmd("unshare").arg("--ipc"), &mq)?},
        "keys": {"inside": key_hex, "host": host_hex, "mq": mq},
    });
    // The keys derive from the run's tag and a host may hold other
    // segments: the raw views are a measurement, the roles the fact.
    ctx.measure("seen", &seen);
    ctx.observe("views", ipc_roles(&seen, key, host_key));
    judge_ipc(&seen, key, host_key)
}

/// The views with the suite's two segments named by role ("namespace",
/// "host"; as ipcs' hex or /proc's decimal key) and every other segment
/// left out; the `keys` record is dropped.
pub fn ipc_roles(seen: &Value, key: u32, host_key: u32) -> Value {
    let role = |x: &Value| {
        let hit = |k: u32| *x == json!(format!("0x{k:08x}")) || *x == json!(k);
        if hit(key) {
            Some("namespace")
        } else if hit(host_key) {
            Some("host")
        } else {
            None
        }
    };
    match seen {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "keys")
                .map(|(k, v)| (k.clone(), ipc_roles(v, key, host_key)))
                .collect(),
        ),
        Value::Array(a) => json!(a.iter().filter_map(role).collect::<Vec<_>>()),
        other => other.clone(),
    }
}

/// Both directions, each with its positive side (the object is there where
/// it was made), so an empty view cannot pass.
pub fn judge_ipc(seen: &Value, key: u32, host_key: u32) -> Outcome {
    let (key_hex, host_hex) = (
        json!(format!("0x{key:08x}")),
        json!(format!("0x{host_key:08x}")),
    );
    let has = |v: &Value, x: &Value| v.as_array().is_some_and(|a| a.contains(x));
    let (inside, host, fresh) = (&seen["inside"], &seen["host"], &seen["fresh"]);
    check!(
        has(&inside["shm"], &key_hex),
        "ipcs -m inside the ipc ns does not list {key_hex}"
    );
    check_eq!(
        inside["mq_inside"],
        json!("present"),
        "the namespace's mqueue, seen inside"
    );
    check!(
        !has(&host["shm"], &key_hex),
        "the host's ipcs -m lists the namespace's segment {key_hex}"
    );
    check!(
        !has(&host["proc_shm"], &json!(key)),
        "the host's /proc/sysvipc/shm lists the namespace's segment"
    );
    check_eq!(
        host["mq_inside"],
        json!("ENOENT"),
        "the namespace's mqueue, opened on the host"
    );
    check!(
        has(&host["shm"], &host_hex),
        "the host's ipcs -m does not list its own segment {host_hex}"
    );
    check_eq!(
        host["mq_host"],
        json!("present"),
        "the host's mqueue, seen on the host"
    );
    check!(
        !has(&fresh["shm"], &host_hex),
        "ipcs -m in a new ipc ns lists the host's segment {host_hex}"
    );
    check!(
        !has(&fresh["proc_shm"], &json!(host_key)),
        "/proc/sysvipc/shm in a new ipc ns lists the host's segment"
    );
    check_eq!(
        fresh["mq_host"],
        json!("ENOENT"),
        "the host's mqueue, opened in a new ipc ns"
    );
    Ok(())
}

fn status_ids(status: &str, field: &str) -> Vec<u32> {
    let key = field.trim_end_matches(':');
    crate::process::status_values(status, key)
        .iter()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// Capabilities inside a user namespace (root mapped to `outside`) must
/// not reach host-owned things: a root-owned 0644 file and the host's uts
/// namespace. What the helper got trying both.
fn try_host_resources(ctx: &mut Ctx, outside: &str) -> anyhow::Result<TryHost> {
    let file = ctx.scratch()?.join("host-owned");
    std::fs::write(&file, "host\n")?;
    let exe = crate::helper::helper_path();
    let tried = run_ok(
        ctx.helper()
            .args(["unshare", "--ns", "user", "--map-root-to", outside, "--"])
            .arg(&exe)
            .args(["helper", "try-host-resources", &file.to_string_lossy()]),
    )?;
    Ok(serde_json::from_str(tried.trim())?)
}

fn uid_map(ctx: &mut Ctx, _v: Variant) -> Outcome {
    const OUTSIDE: u32 = 100_000;
    let o = OUTSIDE.to_string();
    let me = whoami_in(ctx, &["--ns", "user", "--map-root-to", &o])?;
    let (_p, pid) = start_inside(
        ctx,
        &["--ns", "user", "--map-root-to", &o],
        &["sleep", "60"],
    )?;
    let host_status = crate::experiment::read(format!("/proc/{pid}/status"))?;
    let host_uids = status_ids(&host_status, "Uid:");
    let map = crate::experiment::read(format!("/proc/{pid}/uid_map"))?;
    // CLI: unshare(1) without a map: the process's own uid is unmapped.
    let unmapped = run_ok(ctx.cmd("unshare").args(["--user", "id", "-u"]))?;
    let tried = try_host_resources(ctx, &o)?;
    ctx.observe("uid_inside", me.uid);
    ctx.observe("root_owner_inside", me.root_owner);
    ctx.observe("host_uids", &host_uids);
    ctx.observe("uid_map", map.split_whitespace().collect::<Vec<_>>());
    ctx.observe("unmapped_uid_cli", unmapped.trim());
    ctx.observe("host_resources", &tried);
    check_eq!(me.uid, 0, "getuid() inside");
    check_eq!(
        host_uids,
        vec![OUTSIDE; 4],
        "Uid: (real, effective, saved, fs) of the process seen from the host"
    );
    check_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        vec!["0", o.as_str(), "1"],
        "/proc/<pid>/uid_map"
    );
    check_eq!(
        me.root_owner,
        65534,
        "owner of / (host uid 0, unmapped) seen inside"
    );
    check_eq!(
        unmapped.trim(),
        "65534",
        "`unshare --user id -u` (no mapping)"
    );
    check_eq!(
        tried.write_host_file.as_str(),
        "EACCES",
        "writing a host root-owned 0644 file as root inside"
    );
    check_eq!(
        tried.sethostname.as_str(),
        "EPERM",
        "sethostname in the host's uts ns as root inside"
    );
    Ok(())
}

fn cgroupns_root_view(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::cgroups::{proc_cgroup_path, Hierarchy};
    use crate::needs::Controller;
    // Put the child in a group of the suite's own first: a process in the
    // root group sees "/" with or without a cgroup namespace.
    let h = Hierarchy::require(Controller::Pids).map_err(Problem::Unmet)?;
    let group = h.create(&ctx.name("cgns"))?;
    let g2 = group.clone();
    ctx.defer("remove the cgroup", move || {
        let _ = g2.destroy();
    });
    let procs = group.procs_file();
    let mut argv = vec!["unshare"];
    if v.isolated() {
        argv.push("--cgroup");
    }
    argv.extend(["cat", "/proc/self/cgroup"]);
    let script = format!("echo $$ > {} && exec {}", procs.display(), argv.join(" "));
    let cli = run_ok(ctx.cmd("sh").args(["-c", &script]))?;
    let ns_args: &[&str] = if v.isolated() {
        &["--ns", "cgroup"]
    } else {
        &[]
    };
    let exe = crate::helper::helper_path();
    let kscript = format!(
        "echo $$ > {} && exec {} helper unshare {} -- {} helper whoami",
        procs.display(),
        exe.display(),
        ns_args.join(" "),
        exe.display()
    );
    let kernel: Whoami =
        serde_json::from_str(run_ok(ctx.cmd("sh").args(["-c", &kscript]))?.trim())?;
    let cli_path = proc_cgroup_path(&cli, "pids", h.version);
    let kernel_path = proc_cgroup_path(&kernel.cgroup, "pids", h.version);
    ctx.observe("hierarchy", format!("pids ({:?})", h.version));
    ctx.observe("path_cli", &cli_path);
    ctx.observe("path_kernel", &kernel_path);
    check_eq!(
        cli_path.as_deref(),
        Some("/"),
        "cgroup path of `cat /proc/self/cgroup`"
    );
    check_eq!(
        kernel_path.as_deref(),
        Some("/"),
        "cgroup path read by the helper"
    );
    Ok(())
}

/// The three clocks a time namespace could shift, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Clocks {
    /// CLOCK_MONOTONIC: a time namespace can offset it.
    pub monotonic: f64,
    /// CLOCK_BOOTTIME: a time namespace can offset it.
    pub boottime: f64,
    /// CLOCK_REALTIME: no namespace offsets it, the control clock.
    pub realtime: f64,
}

impl Clocks {
    fn now() -> Clocks {
        use nix::time::{clock_gettime, ClockId};
        let c = |id| {
            clock_gettime(id)
                .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
                .unwrap_or(-1.0)
        };
        Clocks {
            monotonic: c(ClockId::CLOCK_MONOTONIC),
            boottime: c(ClockId::CLOCK_BOOTTIME),
            realtime: c(ClockId::CLOCK_REALTIME),
        }
    }

    /// From `helper whoami`'s reply.
    fn from_whoami(me: &Whoami) -> Clocks {
        Clocks {
            monotonic: me.monotonic,
            boottime: me.boottime,
            realtime: me.realtime,
        }
    }
}

/// Why `inside` (read between the host's `before` and `after`) is not the
/// host's clocks with CLOCK_MONOTONIC alone shifted by `off`.
pub fn offset_mismatch(before: Clocks, after: Clocks, inside: Clocks, off: f64) -> Option<String> {
    let within = |x: f64, lo: f64, hi: f64| x >= lo && x <= hi;
    if !within(
        inside.monotonic,
        before.monotonic + off,
        after.monotonic + off,
    ) {
        return Some(format!(
            "CLOCK_MONOTONIC inside {:.3} not within host [{:.3}, {:.3}] + {off}",
            inside.monotonic, before.monotonic, after.monotonic
        ));
    }
    if !within(inside.boottime, before.boottime, after.boottime) {
        return Some(format!(
            "CLOCK_BOOTTIME inside {:.3} shifted",
            inside.boottime
        ));
    }
    if !within(inside.realtime, before.realtime, after.realtime) {
        return Some(format!(
            "CLOCK_REALTIME inside {:.3} shifted",
            inside.realtime
        ));
    }
    None
}

fn time_offsets(ctx: &mut Ctx, _v: Variant) -> Outcome {
    const OFF: f64 = 86400.0;
    let helper = crate::helper::helper_path();
    let before = Clocks::now();
    // Kernel layer: unshare(2) + /proc/self/timens_offsets, then fork.
    let me = whoami_in(
        ctx,
        &["--ns", "time", "--fork", "--monotonic-offset", "86400"],
    )?;
    // CLI layer: unshare(1)'s --monotonic offset, the same clock read back.
    let cli = run(ctx
        .cmd("unshare")
        .args(["--time", "--fork", "--monotonic", "86400"])
        .arg(&helper)
        .args(["helper", "whoami"]))?;
    let after = Clocks::now();
    if !cli.success() {
        broken!("unshare --time --monotonic failed: {}", cli.stderr.trim());
    }
    let cli_me: Whoami = serde_json::from_str(cli.stdout.trim())
        .map_err(|e| anyhow::anyhow!("whoami under unshare(1): {e}: {:.200}", cli.stdout))?;
    let (kernel, cli) = (Clocks::from_whoami(&me), Clocks::from_whoami(&cli_me));
    let shift = |c: Clocks| ((c.monotonic - before.monotonic) / 60.0).round() * 60.0;
    ctx.observe("monotonic_shift_kernel", shift(kernel));
    ctx.observe("monotonic_shift_cli", shift(cli));
    if let Some(why) = offset_mismatch(before, after, kernel, OFF) {
        return Err(Problem::Fail(format!(
            "helper unshare --monotonic-offset: {why}"
        )));
    }
    if let Some(why) = offset_mismatch(before, after, cli, OFF) {
        return Err(Problem::Fail(format!("unshare --monotonic: {why}")));
    }
    Ok(())
}

/// The namespace types the catalogue names that `/proc/self/ns` lacks (a
/// kernel built without one): reported, never skipped.
pub fn missing_types(host: &BTreeMap<String, u64>) -> Vec<&'static str> {
    namespaces::TYPES
        .iter()
        .copied()
        .filter(|k| !host.contains_key(*k))
        .collect()
}

fn lsns_types(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let host = namespaces::inodes("self");
    let missing = missing_types(&host);
    ctx.observe("missing_types", &missing);
    // A type /proc/self/ns lacks is a kernel built without it (CONFIG_*_NS):
    // not configured, as LTP says, so the row is ignored, never failed.
    if !missing.is_empty() {
        return Err(Problem::Unmet(format!(
            "this kernel is built without the {missing:?} namespace (/proc/self/ns lacks it)"
        )));
    }
    let mut procs = Vec::new();
    let mut pids = BTreeMap::new();
    for kind in namespaces::TYPES {
        let (s, pid) = start_inside(ctx, &["--ns", kind], &["sleep", "60"])?;
        // For types other than pid and time the unsharing helper is in the
        // new ns too, and lsns names the lowest pid of a namespace.
        pids.insert(kind.to_string(), (pid, s.pid()));
        procs.push(s);
    }
    let mut seen = BTreeMap::new();
    for (kind, (pid, helper_pid)) in &pids {
        let own = namespaces::inodes(&pid.to_string());
        let listed = namespaces::lsns(kind)?;
        let row = listed.iter().find(|r| Some(&r.ns) == own.get(kind));
        seen.insert(
            kind.clone(),
            json!({"own_ns_differs_from_host": own.get(kind) != host.get(kind), "listed": row.is_some(), "lsns_pid_is_the_process": row.map(|r| r.pid == i64::from(*pid)), "lsns_nprocs": row.map(|r| r.nprocs)}),
        );
        check!(
            own.get(kind) != host.get(kind),
            "a process unshared in {kind} still has the host's {kind} ns"
        );
        check!(
            row.is_some(),
            "lsns -t {kind} does not list the new {kind} ns {:?}",
            own.get(kind)
        );
        let named = row.map(|r| r.pid as i32).unwrap_or(-1);
        check!(
            named == *pid || named == *helper_pid,
            "lsns -t {kind} names pid {named} for the new ns, not the suite's process {pid} (or its parent {helper_pid})"
        );
        for (other, ino) in &host {
            if other != kind && !(kind == "user" && other == "user") {
                check_eq!(
                    own.get(other),
                    Some(ino),
                    "{other} ns of a process unshared only in {kind}"
                );
            }
        }
    }
    ctx.observe("types", &seen);
    drop(procs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_type_is_reported() {
        let mut host: BTreeMap<String, u64> = namespaces::TYPES
            .iter()
            .map(|k| (k.to_string(), 1))
            .collect();
        assert!(missing_types(&host).is_empty());
        host.remove("time");
        assert_eq!(missing_types(&host), vec!["time"]);
    }

    fn clocks(m: f64, b: f64, r: f64) -> Clocks {
        Clocks {
            monotonic: m,
            boottime: b,
            realtime: r,
        }
    }

    /// Recorded shapes: the monotonic clock shifted (pass), boottime shifted
    /// instead (what `unshare --boottime` gives), and no shift at all.
    #[test]
    fn the_offset_must_move_monotonic_alone() {
        let (b, a) = (clocks(100.0, 110.0, 1e9), clocks(101.0, 111.0, 1e9 + 1.0));
        let ok = clocks(100.5 + 86400.0, 110.5, 1e9 + 0.5);
        assert_eq!(offset_mismatch(b, a, ok, 86400.0), None);
        let boot = clocks(100.5, 110.5 + 86400.0, 1e9 + 0.5);
        assert!(offset_mismatch(b, a, boot, 86400.0).is_some());
        let both = clocks(100.5 + 86400.0, 110.5 + 86400.0, 1e9 + 0.5);
        assert!(offset_mismatch(b, a, both, 86400.0)
            .unwrap()
            .contains("BOOTTIME"));
    }

    fn ipc_seen(fresh_shm: Value, fresh_mq: &str) -> Value {
        json!({
            "inside": {"shm": ["0x15000001"], "mq_inside": "present"},
            "host": {"shm": ["0x16000001"], "proc_shm": [0x1600_0001u32],
                     "mq_inside": "ENOENT", "mq_host": "present"},
            "fresh": {"shm": fresh_shm, "proc_shm": [], "mq_host": fresh_mq},
        })
    }

    /// "The host's are invisible inside" can fail: recorded views where the
    /// host's segment or queue shows in a new ipc ns.
    #[test]
    fn ipc_host_objects_seen_inside_fail() {
        let (k, hk) = (0x1500_0001, 0x1600_0001);
        assert!(judge_ipc(&ipc_seen(json!([]), "ENOENT"), k, hk).is_ok());
        let shm = judge_ipc(&ipc_seen(json!(["0x16000001"]), "ENOENT"), k, hk);
        assert!(matches!(shm, Err(Problem::Fail(_))), "{shm:?}");
        let mq = judge_ipc(&ipc_seen(json!([]), "present"), k, hk);
        assert!(matches!(mq, Err(Problem::Fail(_))), "{mq:?}");
    }

    /// Two runs' views differ only in their tag-derived keys and in other
    /// processes' segments: the facts are equal; a leak still shows.
    #[test]
    fn ipc_roles_keep_what_is_seen_not_the_keys() {
        let (k, hk) = (0x1500_0001, 0x1600_0001);
        let mut other = ipc_seen(json!([]), "ENOENT");
        other["host"]["shm"] = json!(["0x16000001", "0x00000abc"]);
        other["keys"] = json!({"inside": "0x15000001"});
        let roles = ipc_roles(&other, k, hk);
        assert_eq!(roles, ipc_roles(&ipc_seen(json!([]), "ENOENT"), k, hk));
        assert_eq!(roles["host"]["shm"], json!(["host"]));
        assert_eq!(roles["host"]["proc_shm"], json!(["host"]));
        assert!(roles.get("keys").is_none());
        let leak = ipc_roles(&ipc_seen(json!(["0x16000001"]), "ENOENT"), k, hk);
        assert_eq!(leak["fresh"]["shm"], json!(["host"]));
    }

    #[test]
    fn ipcs_keys_reads_the_key_column() {
        let t = "\n------ Shared Memory Segments --------\nkey        shmid      owner\n0x1500ab01 3          root\n";
        assert_eq!(ipcs_keys(t), vec!["0x1500ab01"]);
    }
}
