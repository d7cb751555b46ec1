//! Catalogue section 4: the other namespaces of the seed's `lsns` table.

use crate::experiment::{Ctx, Experiment, Outcome, Section, Variant};
use crate::experiments::pid::{start_inside, whoami_in};
use crate::helper::HelperOp;
use crate::namespaces;
use crate::needs::{Need, Tool};
use crate::process::{run, run_ok};
use crate::{check, check_eq};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub static EXPERIMENTS: &[Experiment] = &[
    Experiment {
        id: "uts.hostname-isolated",
        section: Section::OtherNs,
        asserts: "`hostname X` inside a new uts ns is seen inside, not on the host",
        needs: &[Need::Root, Need::Tool(Tool::Unshare), Need::Tool(Tool::Hostname)],
        control: None,
        body: hostname_isolated,
        exclusive: None,
    },
    Experiment {
        id: "ipc.sysv-isolated",
        section: Section::OtherNs,
        asserts: "a SysV shm segment made in a new ipc ns is invisible to the host's ipcs, and the host's are invisible inside",
        needs: &[Need::Root, Need::Tool(Tool::Ipcs), Need::Tool(Tool::Nsenter), Need::Tool(Tool::Unshare)],
        control: None,
        body: sysv_isolated,
        exclusive: None,
    },
    Experiment {
        id: "user.uid-map",
        section: Section::OtherNs,
        asserts: "uid 0 inside maps to uid 100000 outside; unmapped ids show as 65534; caps inside do not work on host-owned resources",
        needs: &[Need::Root, Need::UserNamespaces, Need::Tool(Tool::Unshare)],
        control: None,
        body: uid_map,
        exclusive: None,
    },
    Experiment {
        id: "cgroupns.root-view",
        section: Section::OtherNs,
        asserts: "/proc/self/cgroup inside a new cgroup ns shows / for the process's own group",
        needs: &[Need::Root, Need::Tool(Tool::Unshare), Need::Cgroup(crate::needs::Controller::Pids)],
        control: Some("the same process in the same group without --cgroup"),
        body: cgroupns_root_view,
        exclusive: None,
    },
    Experiment {
        id: "time.offsets",
        section: Section::OtherNs,
        asserts: "a new time ns with a monotonic (boottime) offset shifts that clock of the child by the offset, and nothing else",
        needs: &[Need::Root, Need::Kernel(5, 6), Need::Tool(Tool::Unshare)],
        control: None,
        body: time_offsets,
        exclusive: None,
    },
    Experiment {
        id: "ns.lsns-types",
        section: Section::OtherNs,
        asserts: "for each type a process unshared in it is listed by `lsns -t TYPE` with its own ns, and shares every other type with the host",
        needs: &[Need::Root, Need::Tool(Tool::Lsns), Need::Kernel(5, 6)],
        control: None,
        body: lsns_types,
        exclusive: None,
    },
];

pub static HELPER_OPS: &[(&str, HelperOp)] = &[
    ("shm-hold", op_shm_hold),
    ("try-host-resources", op_try_host),
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
        &format!("hostname {name} && hostname"),
    ]))?;
    let kernel = whoami_in(ctx, &["--ns", "uts", "--hostname", &name])?;
    let after = host_hostname();
    ctx.observe("inside_cli", cli.trim());
    ctx.observe("inside_kernel", &kernel["hostname"]);
    ctx.observe("host_changed", before != after);
    check_eq!(
        cli.trim(),
        name.as_str(),
        "`hostname` inside after `hostname X`"
    );
    check_eq!(
        kernel["hostname"].as_str(),
        Some(name.as_str()),
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

fn sysv_isolated(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // A key unique to this run: pid-derived, never 0 (IPC_PRIVATE).
    let key = 0x1500_0000u32
        | (std::process::id() & 0xffff) << 8
        | (ctx.tag.as_str().len() as u32 & 0xff);
    let key_hex = format!("0x{key:08x}");
    let (_holder, pid) = start_inside(
        ctx,
        &["--ns", "ipc"],
        &[
            &crate::helper::helper_path().to_string_lossy(),
            "helper",
            "shm-hold",
            &key.to_string(),
        ],
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
    let host_cli = ipcs_keys(&run_ok(ctx.cmd("ipcs").arg("-m"))?);
    let host_kernel = crate::experiment::read("/proc/sysvipc/shm")?;
    let host_kernel_keys: Vec<u32> = host_kernel
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k as u32)
        .collect();
    // The other way: a fresh ipc ns sees none of the host's segments.
    let fresh = run_ok(ctx.cmd("unshare").args(["--ipc", "ipcs", "-m"]))?;
    let fresh_kernel = run_ok(
        ctx.cmd("unshare")
            .args(["--ipc", "cat", "/proc/sysvipc/shm"]),
    )?;
    ctx.observe("inside_lists_key", inside.contains(&key_hex));
    ctx.observe("host_has_key_cli", host_cli.contains(&key_hex));
    ctx.observe("host_has_key_kernel", host_kernel_keys.contains(&key));
    ctx.observe("fresh_ns_segments", ipcs_keys(&fresh).len());
    check!(
        inside.contains(&key_hex),
        "ipcs -m inside the ipc ns does not list {key_hex}: {inside:?}"
    );
    check!(
        !host_cli.contains(&key_hex),
        "the host's ipcs -m lists the namespace's segment {key_hex}"
    );
    check!(
        !host_kernel_keys.contains(&key),
        "the host's /proc/sysvipc/shm lists the namespace's segment"
    );
    check_eq!(
        ipcs_keys(&fresh),
        Vec::<String>::new(),
        "segments ipcs -m lists in a fresh ipc ns"
    );
    check_eq!(
        fresh_kernel.lines().count(),
        1,
        "lines of /proc/sysvipc/shm in a fresh ipc ns (header only)"
    );
    Ok(())
}

fn status_ids(status: &str, field: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|r| {
            r.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
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
    // Capabilities inside must not reach host-owned things: a root-owned
    // 0644 file and the host's uts namespace.
    let file = ctx.scratch()?.join("host-owned");
    std::fs::write(&file, "host\n")?;
    let exe = crate::helper::helper_path();
    let tried = run_ok(
        ctx.helper()
            .args(["unshare", "--ns", "user", "--map-root-to", &o, "--"])
            .arg(&exe)
            .args(["helper", "try-host-resources", &file.to_string_lossy()]),
    )?;
    let tried: Value = serde_json::from_str(tried.trim())?;
    ctx.observe("uid_inside", &me["uid"]);
    ctx.observe("root_owner_inside", &me["root_owner"]);
    ctx.observe("host_uids", &host_uids);
    ctx.observe("uid_map", map.split_whitespace().collect::<Vec<_>>());
    ctx.observe("unmapped_uid_cli", unmapped.trim());
    ctx.observe("host_resources", &tried);
    check_eq!(me["uid"].as_u64(), Some(0), "getuid() inside");
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
        me["root_owner"].as_i64(),
        Some(65534),
        "owner of / (host uid 0, unmapped) seen inside"
    );
    check_eq!(
        unmapped.trim(),
        "65534",
        "`unshare --user id -u` (no mapping)"
    );
    check_eq!(
        tried["write_host_file"].as_str(),
        Some("EACCES"),
        "writing a host root-owned 0644 file as root inside"
    );
    check_eq!(
        tried["sethostname"].as_str(),
        Some("EPERM"),
        "sethostname in the host's uts ns as root inside"
    );
    Ok(())
}

fn cgroupns_root_view(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::cgroups::{proc_cgroup_path, Hierarchy};
    use crate::needs::Controller;
    // Put the child in a group of the suite's own first: a process in the
    // root group sees "/" with or without a cgroup namespace.
    let h = Hierarchy::require(Controller::Pids)?;
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
    let kernel: Value = serde_json::from_str(run_ok(ctx.cmd("sh").args(["-c", &kscript]))?.trim())?;
    let cli_path = proc_cgroup_path(&cli, "pids", h.version);
    let kernel_path = proc_cgroup_path(kernel["cgroup"].as_str().unwrap_or(""), "pids", h.version);
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

fn time_offsets(ctx: &mut Ctx, _v: Variant) -> Outcome {
    const OFF: f64 = 86400.0;
    let clock = |id| {
        nix::time::clock_gettime(id)
            .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
            .unwrap_or(-1.0)
    };
    use nix::time::ClockId;
    const CLOCK_MONOTONIC: ClockId = ClockId::CLOCK_MONOTONIC;
    const CLOCK_BOOTTIME: ClockId = ClockId::CLOCK_BOOTTIME;
    const CLOCK_REALTIME: ClockId = ClockId::CLOCK_REALTIME;
    let (m0, b0, r0) = (
        clock(CLOCK_MONOTONIC),
        clock(CLOCK_BOOTTIME),
        clock(CLOCK_REALTIME),
    );
    let me = whoami_in(
        ctx,
        &["--ns", "time", "--fork", "--monotonic-offset", "86400"],
    )?;
    // CLI layer: unshare(1)'s --boottime offset, read through /proc/uptime.
    let up = run(ctx.cmd("unshare").args([
        "--time",
        "--fork",
        "--boottime",
        "86400",
        "cat",
        "/proc/uptime",
    ]))?;
    let (m1, b1, r1) = (
        clock(CLOCK_MONOTONIC),
        clock(CLOCK_BOOTTIME),
        clock(CLOCK_REALTIME),
    );
    let host_uptime: f64 = crate::experiment::read("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(-1.0);
    let inside_uptime: f64 = up
        .stdout
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(-1.0);
    let mono = me["monotonic"].as_f64().unwrap_or(-1.0);
    let boot = me["boottime"].as_f64().unwrap_or(-1.0);
    let real = me["realtime"].as_f64().unwrap_or(-1.0);
    ctx.observe("monotonic_shift", ((mono - m0) / 60.0).round() * 60.0);
    ctx.observe("boottime_shift_kernel", ((boot - b0) / 60.0).round() * 60.0);
    ctx.observe(
        "uptime_shift_cli",
        ((inside_uptime - host_uptime) / 60.0).round() * 60.0,
    );
    check!(
        up.success(),
        "unshare --time --boottime failed: {}",
        up.stderr.trim()
    );
    check!(
        mono >= m0 + OFF && mono <= m1 + OFF,
        "CLOCK_MONOTONIC inside {mono:.3} not within host [{m0:.3}, {m1:.3}] + {OFF}"
    );
    check!(
        boot >= b0 && boot <= b1,
        "CLOCK_BOOTTIME inside {boot:.3} shifted (host [{b0:.3}, {b1:.3}])"
    );
    check!(
        real >= r0 && real <= r1,
        "CLOCK_REALTIME inside {real:.3} shifted (host [{r0:.3}, {r1:.3}])"
    );
    check!(
        inside_uptime >= host_uptime + OFF - 5.0 && inside_uptime <= host_uptime + OFF,
        "/proc/uptime inside {inside_uptime} is not the host's {host_uptime} + {OFF}"
    );
    Ok(())
}

fn lsns_types(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let host = namespaces::inodes("self");
    let mut procs = Vec::new();
    let mut pids = BTreeMap::new();
    for kind in namespaces::TYPES.iter().filter(|k| host.contains_key(**k)) {
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
            json!({"own_ns": own.get(kind), "lsns_pid": row.map(|r| r.pid), "lsns_nprocs": row.map(|r| r.nprocs)}),
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

// ---- helper ops ----

/// `shm-hold KEY`: make a SysV segment with KEY in this ipc ns and wait to
/// be killed; the segment dies with the namespace.
fn op_shm_hold(args: &[String]) -> i32 {
    let key: i32 = args
        .first()
        .and_then(|k| k.parse::<u32>().ok())
        .unwrap_or(0) as i32;
    // SAFETY: plain syscall.
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 {
        eprintln!("shmget: {}", std::io::Error::last_os_error());
        return 125;
    }
    loop {
        nix::unistd::pause();
    }
}

fn errno_name(r: Result<(), nix::errno::Errno>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// `try-host-resources FILE`: as root of a user namespace, try to open a
/// host-owned file for writing and to set the (host's) hostname.
fn op_try_host(args: &[String]) -> i32 {
    let file = args.first().cloned().unwrap_or_default();
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .map(|_| ())
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let host = nix::unistd::gethostname().unwrap_or_default();
    let set = nix::unistd::sethostname(&host);
    println!(
        "{}",
        json!({"write_host_file": errno_name(write), "sethostname": errno_name(set)})
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipcs_keys_reads_the_key_column() {
        let t = "\n------ Shared Memory Segments --------\nkey        shmid      owner\n0x1500ab01 3          root\n";
        assert_eq!(ipcs_keys(t), vec!["0x1500ab01"]);
    }
}
