//! The rows about what a container is made of: its namespaces, as the
//! host's tools (lsns, nsenter, ip netns) see them, and its network.

use super::{both, comm, lsns_nprocs, sh_once, NO_NET};
use crate::docker as dk;
use crate::experiment::{read, Ctx, Outcome, Problem, Variant};
use crate::host::HostFacts;
use crate::namespaces;
use crate::process::{run, wait_until};
use crate::{broken, check, check_eq};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub(super) fn container_pid_1(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // The seed's `docker run -it alpine /bin/sh`: a shell kept alive by its
    // open stdin, so it is the only process of the container.
    let c = dk::run_shell(ctx, &[])?;
    let hostpid = dk::init_pid(ctx, &c)?;
    let pidns = namespaces::inode(&hostpid.to_string(), "pid")?;
    let rows = namespaces::lsns("pid")?;
    let row = rows.iter().find(|r| r.ns == pidns).cloned();
    let status = read(format!("/proc/{hostpid}/status"))?;
    let nspid = namespaces::parse_nspid(&status).unwrap_or_default();
    // What the shell itself says, and what /proc/1 inside names.
    let inside = dk::exec(ctx, &c, &["cat", "/proc/1/comm"])?;
    // Host pids name this run; their relations are the facts.
    ctx.measure("init_host_pid", hostpid);
    ctx.observe("init_comm", comm(hostpid));
    ctx.measure("nspid", &nspid);
    ctx.observe("nspid_inner", nspid.last());
    ctx.observe("nspid_outer_is_host_pid", nspid.first() == Some(&hostpid));
    ctx.observe("proc_1_comm_inside", inside.stdout.trim());
    ctx.observe("lsns_nprocs", row.as_ref().map(|r| r.nprocs));
    ctx.measure("lsns_pid", row.as_ref().map(|r| r.pid));
    ctx.observe(
        "lsns_pid_is_the_init",
        row.as_ref().map(|r| r.pid == i64::from(hostpid)),
    );
    let (_c2, once) = sh_once(ctx, "once", NO_NET, "echo $$")?;
    ctx.observe("echo_dollar_dollar", once.stdout.trim());
    if !once.success() {
        broken!("docker run sh -c 'echo $$' failed: {}", once.stderr.trim());
    }
    check_eq!(
        once.stdout.trim(),
        "1",
        "`echo $$` in the container's shell"
    );
    check_eq!(
        nspid.last().copied(),
        Some(1),
        "the init's pid inside (NSpid)"
    );
    let init_comm = comm(hostpid);
    check_eq!(init_comm.as_str(), "sh", "the container's init");
    check_eq!(
        inside.stdout.trim(),
        "sh",
        "/proc/1/comm inside the container"
    );
    let Some(row) = row else {
        return Err(Problem::Fail(format!(
            "lsns -t pid does not list the container's pid ns {pidns}"
        )));
    };
    check_eq!(row.nprocs, 1, "NPROCS of the container's pid ns in lsns");
    check_eq!(row.pid, hostpid as i64, "the lsns owner pid");
    Ok(())
}

const SHARED_KINDS: [&str; 5] = ["pid", "net", "mnt", "uts", "ipc"];

/// `readlink /proc/self/ns/KIND` for the kinds, as printed by a process.
fn parse_readlinks(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(namespaces::parse_ns_link)
        .map(|(k, i)| (k.to_string(), i))
        .collect()
}

pub(super) fn exec_is_nsenter(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let c = dk::run_shell(ctx, NO_NET)?;
    let hostpid = dk::init_pid(ctx, &c)?;
    let init = namespaces::inodes(&hostpid.to_string());
    let me = namespaces::inodes("self");
    // busybox readlink takes one file: loop in the shell.
    let script = format!(
        "for k in {}; do readlink /proc/self/ns/$k; done",
        SHARED_KINDS.join(" ")
    );
    let ex = dk::exec(ctx, &c, &["sh", "-c", &script])?;
    if !ex.success() {
        broken!("docker exec readlink failed: {}", ex.stderr.trim());
    }
    let via_exec = parse_readlinks(&ex.stdout);
    // nsenter is the host's way into the same namespaces; having entered
    // the mount namespace it runs the container's own sh and readlink.
    let pid_s = hostpid.to_string();
    let mut ns = ctx.cmd("nsenter");
    ns.args([
        "-t", &pid_s, "-p", "-n", "-m", "-u", "-i", "--", "sh", "-c", &script,
    ]);
    let ne = run(&mut ns)?;
    let via_nsenter = parse_readlinks(&ne.stdout);
    // Inodes name this run's namespaces: which ones match is the fact.
    ctx.measure("init", &init);
    ctx.measure("host", &me);
    ctx.measure("docker_exec", &via_exec);
    ctx.measure("nsenter", &via_nsenter);
    for (key, via) in [("docker_exec", &via_exec), ("nsenter", &via_nsenter)] {
        let same: BTreeMap<&String, bool> = via
            .iter()
            .map(|(k, i)| (k, init.get(k) == Some(i)))
            .collect();
        ctx.observe(&format!("{key}_same_ns_as_init"), &same);
    }
    if !ne.success() {
        broken!("nsenter -t {hostpid} failed: {}", ne.stderr.trim());
    }
    same_ns_as_init(&init, &me, &via_exec, "the docker exec process")?;
    same_ns_as_init(&init, &me, &via_nsenter, "the nsenter process")
}

/// Each shared kind of `seen` equals the init's, which is not the host's.
/// An unreadable link is never equal to another unreadable link: the
/// init's missing is a broken step, the other side's missing a failure.
pub fn same_ns_as_init(
    init: &BTreeMap<String, u64>,
    host: &BTreeMap<String, u64>,
    seen: &BTreeMap<String, u64>,
    who: &str,
) -> Outcome {
    for k in SHARED_KINDS {
        let Some(want) = init.get(k) else {
            broken!("the container init's {k} ns link could not be read");
        };
        check_eq!(seen.get(k), Some(want), "{k} ns of {who} vs the init");
        check!(
            host.get(k) != Some(want),
            "the container's {k} ns is the host's: nothing was entered"
        );
    }
    Ok(())
}

pub(super) fn namespaces_created(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let c = dk::run_shell(ctx, &[])?;
    let hostpid = dk::init_pid(ctx, &c)?;
    let init = namespaces::inodes(&hostpid.to_string());
    let me = namespaces::inodes("self");
    let layout = HostFacts::get().cgroup.layout.clone();
    // Docker's default cgroupns mode: "host" unless the host is cgroup v2 only.
    let cgroup_private = layout == "v2";
    let mut table = BTreeMap::new();
    for k in namespaces::TYPES {
        let (Some(a), Some(b)) = (init.get(*k), me.get(*k)) else {
            continue;
        };
        let listed = lsns_nprocs(k, *a)?.is_some();
        table.insert(k.to_string(), json!({"new": a != b, "in_lsns": listed}));
    }
    ctx.observe("cgroup_layout", &layout);
    ctx.observe("table", &table);
    let new = |k: &str| table.get(k).and_then(|v| v["new"].as_bool());
    for k in SHARED_KINDS {
        check_eq!(new(k), Some(true), "a new {k} namespace");
        check_eq!(
            table[k]["in_lsns"].as_bool(),
            Some(true),
            "lsns -t {k} lists the container's ns"
        );
    }
    check_eq!(new("user"), Some(false), "a new user namespace");
    if me.contains_key("time") {
        check_eq!(new("time"), Some(false), "a new time namespace");
    }
    check_eq!(
        new("cgroup"),
        Some(cgroup_private),
        "a new cgroup namespace on a {layout} host"
    );
    Ok(())
}

pub(super) fn nprocs_rises(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let c = dk::run_shell(ctx, NO_NET)?;
    let hostpid = dk::init_pid(ctx, &c)?;
    let pidns = namespaces::inode(&hostpid.to_string(), "pid")?;
    let before = lsns_nprocs("pid", pidns)?;
    let r = run(dk::docker(ctx).args(["exec", "-d", &c.id, "sleep", "60"]))?;
    if !r.success() {
        broken!("docker exec -d sleep 60: {}", r.stderr.trim());
    }
    // exec -d returns once the process is started; wait for /proc to show it.
    let seen = wait_until(Duration::from_secs(10), || {
        namespaces::pids_in_ns("pid", pidns)
            .iter()
            .any(|p| comm(*p) == "sleep")
    });
    let after = lsns_nprocs("pid", pidns)?;
    let members: Vec<(i32, String)> = namespaces::pids_in_ns("pid", pidns)
        .into_iter()
        .map(|p| (p, comm(p)))
        .collect();
    ctx.observe("nprocs_before", before);
    ctx.observe("nprocs_after", after);
    ctx.measure("processes_after", &members);
    check!(
        seen,
        "the exec'd sleep never appeared in the container's pid ns"
    );
    let (Some(b), Some(a)) = (before, after) else {
        return Err(Problem::Fail(format!("lsns does not list pid ns {pidns}")));
    };
    check_eq!(b, 1, "NPROCS before (the shell alone)");
    check_eq!(a, b + 1, "NPROCS with sleep 60 running");
    Ok(())
}

pub(super) fn netns_not_in_ip_netns(ctx: &mut Ctx, _v: Variant) -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let c = dk::run_shell(ctx, &[])?;
    let hostpid = dk::init_pid(ctx, &c)?;
    let netns = namespaces::inode(&hostpid.to_string(), "net")?;
    let sandbox = dk::inspect(ctx, &c)?["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The engine's path, in the engine's mount namespace (which is the
    // host's only for an engine started on the host itself).
    let sandbox_seen = dk::engine_path(&sandbox).map_err(anyhow::Error::msg)?;
    let sandbox_ino = std::fs::metadata(&sandbox_seen).map(|m| m.ino()).ok();
    let listed = lsns_nprocs("net", netns)?.is_some();
    let ipn = crate::process::run_ok(ctx.cmd("ip").args(["netns", "list"]))?;
    let names: Vec<String> = ipn
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let named_inodes: Vec<(String, Option<u64>)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                std::fs::metadata(Path::new("/run/netns").join(n))
                    .map(|m| m.ino())
                    .ok(),
            )
        })
        .collect();
    ctx.measure("container_netns", netns);
    ctx.measure("sandbox_key", &sandbox);
    ctx.measure("sandbox_key_inode", sandbox_ino);
    ctx.observe(
        "sandbox_key_is_the_container_netns",
        sandbox_ino == Some(netns),
    );
    ctx.measure("sandbox_key_read_at", sandbox_seen.display().to_string());
    ctx.observe("in_lsns", listed);
    ctx.measure("ip_netns_list", &names);
    check!(
        listed,
        "lsns -t net does not list the container's net ns {netns}"
    );
    check_eq!(
        sandbox_ino,
        Some(netns),
        "the inode of Docker's SandboxKey file"
    );
    check!(
        !named_inodes.iter().any(|(_, i)| *i == Some(netns)),
        "ip netns list shows the container's net ns: {named_inodes:?}"
    );
    Ok(())
}

pub(super) fn container_network(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let c = dk::run_shell(ctx, &[])?;
    let Some(gw) = dk::gateway(&dk::inspect(ctx, &c)?, "bridge") else {
        broken!("the container on the default bridge has no gateway");
    };
    // The gateway is the bridge's address on the host (docker0): host-local.
    let host_addrs = crate::process::run_ok(ctx.cmd("ip").args(["-o", "-4", "addr", "show"]))
        .unwrap_or_default();
    let gw_is_local = host_addrs
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(gw.as_str()));
    let ping = format!("ping -c 1 -W 2 {gw}");
    let none_script = format!("ip -o link; echo ---; {ping}");
    // Both containers at once: the bridged one's ping and the isolated one.
    let mut ctx2 = ctx.fork();
    let (cx, cr, pr) = (&mut *ctx, &c, &ping);
    let (bridged, isolated) = both(
        move || dk::exec(cx, cr, &["sh", "-c", pr]),
        || sh_once(&mut ctx2, "par", &["--network", "none"], &none_script),
    );
    let bridged = bridged?;
    let (_n, isolated) = isolated?;
    drop(ctx2);
    let links: Vec<String> = isolated
        .stdout
        .lines()
        .take_while(|l| *l != "---")
        .filter_map(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .collect();
    ctx.observe("gateway", &gw);
    ctx.observe("gateway_is_host_local", gw_is_local);
    ctx.measure("bridged_ping", bridged.stdout.trim());
    ctx.observe("bridged_ping_status", bridged.shell_status());
    ctx.observe("none_links", &links);
    ctx.observe("none_ping_status", isolated.shell_status());
    ctx.observe("none_ping_stderr", isolated.stderr.trim());
    check!(
        gw_is_local,
        "the gateway {gw} is not an address of this host"
    );
    check!(
        bridged.success() && bridged.stdout.contains("1 packets received"),
        "the container did not reach its gateway {gw}: {} {}",
        bridged.stdout.trim(),
        bridged.stderr.trim()
    );
    check_eq!(links, vec!["lo".to_string()], "links with --network none");
    check!(!isolated.success(), "ping succeeded with --network none");
    check!(
        isolated.stderr.contains("Network is unreachable"),
        "ping with --network none: expected 'Network is unreachable', got {:?}",
        isolated.stderr.trim()
    );
    Ok(())
}
