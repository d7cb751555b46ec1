//! The kernel's own boundaries around user and network namespaces: abstract
//! sockets per netns, locked mounts, device nodes, setns out of a user ns,
//! and no_new_privs against a setuid binary.

use super::{hold_mount_ns, in_holder, kv_lines, last_json, op_in_holder, open_dir, UNPRIV_S};
use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::escape::{Connect, Mknod, Setns, UmountReveal};
use crate::helper::helper_path;
use crate::netns::Netns;
use crate::process::{run, run_ok, Spawned};
use crate::{broken, check, check_eq};
use std::collections::BTreeMap;

// ------------------------------------------- esc.abstract-socket-per-netns

/// Why the host is safe: server and clients sit in netns the suite made
/// (`ip netns add isoc-…`); the host's netns never binds or connects, and
/// the abstract name carries the run's tag. A connect that unexpectedly
/// crosses reaches only the suite's own server.
pub(super) fn abstract_socket_per_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let a = Netns::add(ctx, "srv")?;
    let b = Netns::add(ctx, "cli")?;
    let name = ctx.name("abstract");
    let mut server = Spawned::start(a.helper("esc-abstract-serve").arg(&name))?;
    let l = server.read_line()?;
    if l != "ready" {
        broken!("the abstract-socket server printed {l:?}");
    }
    let client_ns = if v.isolated() { &b } else { &a };
    // CLI layer: `ip netns exec` puts the client in the netns.
    let cli: Connect = last_json(&run_ok(
        client_ns.helper("esc-abstract-connect").arg(&name),
    )?)?;
    // Kernel layer: the client setns()es into the netns file itself.
    let kernel: Connect = last_json(&run_ok(
        ctx.helper()
            .args(["esc-abstract-connect", &name])
            .arg(client_ns.path()),
    )?)?;
    drop(server);
    // The netns inodes name this run's namespaces (checked as setup below).
    for (layer, c) in [("cli", &cli), ("kernel", &kernel)] {
        ctx.observe(&format!("{layer}.connect"), &c.connect);
        ctx.observe(&format!("{layer}.reply"), &c.reply);
        ctx.measure(&format!("{layer}.netns"), c.netns);
    }
    // Where the clients ran is setup, the same in both variants.
    if !(cli.netns == client_ns.inode() && kernel.netns == client_ns.inode()) {
        broken!(
            "a client was not in the intended suite netns ({:?}): cli {:?}, kernel {:?}",
            client_ns.inode(),
            cli.netns,
            kernel.netns
        );
    }
    check_eq!(
        cli.connect.as_str(),
        "ECONNREFUSED",
        "connect() under ip netns exec from the other netns"
    );
    check_eq!(
        kernel.connect.as_str(),
        "ECONNREFUSED",
        "connect() after setns into the other netns"
    );
    Ok(())
}

// ------------------------------------------------------ esc.locked-mounts

/// Why the host is safe: the covering tmpfs is mounted in the holder's
/// private mount ns, the umount attempts run in copies of it; if the lock
/// failed, only a copy loses the suite's tmpfs, showing the suite's file.
pub(super) fn locked_mounts(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "locked")?;
    let cover = dir.join("cover");
    std::fs::create_dir_all(&cover)?;
    let file = cover.join("covered");
    std::fs::write(&file, "covered-by-suite-tmpfs\n")?;
    let holder = hold_mount_ns(
        ctx,
        &format!("mount -t tmpfs -o size=1m {} {}", ctx.tag, cover.display()),
    )?;
    let (c, f) = (cover.to_string_lossy(), file.to_string_lossy());
    let flags = if v.isolated() { "-Urm" } else { "-m" };
    let script = format!("umount {c}; echo umount=$?; cat {f}");
    let cli = run(in_holder(ctx, &holder).args(["unshare", flags, "sh", "-c", &script]))?;
    let ns: &[&str] = if v.isolated() {
        &["--ns", "user,mnt", "--map-root-to", "0"]
    } else {
        &["--ns", "mnt"]
    };
    let kernel: UmountReveal =
        op_in_holder(ctx, &holder, Some(ns), &["esc-umount-reveal", &c, &f])?;
    drop(holder);
    let out = kv_lines(&cli.stdout);
    let shown = cli.stdout.contains("covered-by-suite-tmpfs");
    ctx.observe("cli_umount_status", out.get("umount"));
    ctx.observe(
        "cli_umount_stderr",
        cli.stderr.lines().find(|l| l.starts_with("umount")),
    );
    ctx.observe("cli_file_shown", shown);
    ctx.observe("kernel", &kernel);
    check_eq!(
        kernel.umount.as_str(),
        "EINVAL",
        "umount2(tmpfs) in the new user+mnt ns"
    );
    check_eq!(
        kernel.umount_detach.as_str(),
        "EINVAL",
        "umount2(tmpfs, MNT_DETACH) in the new user+mnt ns"
    );
    check_eq!(
        kernel.covered_file.as_str(),
        "ENOENT",
        "reading the covered file after the umount"
    );
    check!(
        out.get("umount").map(String::as_str) != Some("0") && !shown,
        "`unshare {flags}`: umount exited {:?} and the covered file {}",
        out.get("umount"),
        if shown { "shows" } else { "stays hidden" }
    );
    Ok(())
}

// ------------------------------------------------ esc.userns-no-device-nodes

/// Why the host is safe: the nodes are 1:3 (what /dev/null is), made in a
/// tmpfs that only the holder's private mount ns has, as is the proc
/// mount; both vanish with the holder.
pub(super) fn userns_no_device_nodes(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "dev")?;
    let t = dir.join("t");
    std::fs::create_dir_all(&t)?;
    let ts = t.to_string_lossy().into_owned();
    let holder = hold_mount_ns(
        ctx,
        &format!(
            "mount -t tmpfs -o size=1m,mode=1777 {} {ts}\nmkdir -m 0777 {ts}/p-cli {ts}/p-kernel",
            ctx.tag
        ),
    )?;
    let cli = device_node_cli(ctx, v, &holder, &ts)?;
    let ns: &[&str] = &["--ns", "user,mnt", "--map-root-to", UNPRIV_S];
    let ns = v.isolated().then_some(ns);
    let kernel: Mknod = op_in_holder(ctx, &holder, ns, &["esc-mknod", &ts])?;
    drop(holder);
    ctx.observe("cli", &cli);
    ctx.observe("kernel", &kernel);
    check_eq!(
        kernel.mknod.as_str(),
        "EPERM",
        "mknod(c 1:3) as uid 0 of the user ns"
    );
    check_eq!(
        kernel.mount_proc.as_str(),
        "EPERM",
        "mount(proc) as uid 0 of the user ns (host pid ns)"
    );
    check_eq!(
        cli.get("mknod").map(String::as_str),
        Some("Operation not permitted"),
        "mknod(1) c 1 3 as uid 0 of `unshare -Urm`"
    );
    check!(
        cli.get("proc")
            .is_some_and(|m| m.ends_with("permission denied.")),
        "mount -t proc as uid 0 of `unshare -Urm`: {:?}",
        cli.get("proc")
    );
    Ok(())
}

/// The CLI layer: mknod(1) and mount(8) as uid 0 of `unshare -Urm` run by
/// uid 100000 (or as real root in the control), in the holder's mount ns.
fn device_node_cli(
    ctx: &Ctx,
    v: Variant,
    holder: &Spawned,
    ts: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let script = format!(
        "m=$(mknod {ts}/cli c 1 3 2>&1) && echo mknod=ok || echo \"mknod=${{m##*: }}\"\n\
         if m=$(mount -t proc proc {ts}/p-cli 2>&1); then echo proc=ok; umount {ts}/p-cli; \
         else echo \"proc=$(echo \"$m\" | head -1)\"; fi"
    );
    let mut cli = in_holder(ctx, holder);
    if v.isolated() {
        cli.args(["unshare", "--setuid", UNPRIV_S, "--setgid", UNPRIV_S])
            .args(["unshare", "-Urm"]);
    }
    let out = run_ok(cli.args(["sh", "-c", &script]))?;
    Ok(kv_lines(&out.replace(ts, "T")))
}

// --------------------------------------------------- esc.setns-out-denied

/// Why the host is safe: the target is a netns the suite made (`ip netns
/// add isoc-…`, owned by the init user ns), never the host's; a setns that
/// unexpectedly worked lands there and the process exits at once.
pub(super) fn setns_out_denied(ctx: &mut Ctx, v: Variant) -> Outcome {
    let ns = Netns::add(ctx, "out")?;
    let path = ns.path();
    let p = path.to_string_lossy().into_owned();
    let mut cli = ctx.cmd("unshare");
    cli.env("LC_ALL", "C");
    if v.isolated() {
        cli.args(["--setuid", UNPRIV_S, "--setgid", UNPRIV_S, "unshare", "-Ur"]);
    }
    let cli = run(cli.args(["nsenter", &format!("--net={p}"), "true"]))?;
    let exe = helper_path();
    let mut k = ctx.helper();
    if v.isolated() {
        k.args(["unshare", "--ns", "user", "--map-root-to", UNPRIV_S, "--"])
            .arg(&exe)
            .arg("helper");
    }
    let kernel: Setns = last_json(&run_ok(k.args(["esc-setns", &p]))?)?;
    ctx.measure("target_netns", ns.inode());
    ctx.observe("cli_status", cli.shell_status());
    ctx.observe("cli_stderr", cli.stderr.trim().replace(&p, "NETNS"));
    ctx.observe("kernel", &kernel);
    if kernel.open != "ok" {
        broken!(
            "opening the suite netns file (not the gate under test): {}",
            kernel.open
        );
    }
    check_eq!(
        kernel.setns.as_str(),
        "EPERM",
        "setns(CLONE_NEWNET) from the user ns"
    );
    check!(
        !cli.success()
            && cli.stderr.contains("reassociate")
            && cli.stderr.contains("Operation not permitted"),
        "nsenter --net from `unshare -Ur` exited {}: {}",
        cli.shell_status(),
        cli.stderr.trim()
    );
    Ok(())
}

// ------------------------------------------------------- esc.no-new-privs

/// Why the host is safe: the setuid-root copy lives in a tmpfs that exists
/// only in the holder's private mount ns (the host's mount ns never has a
/// path to it), it is `cat` run with a fixed argument, and it vanishes with
/// the holder.
pub(super) fn no_new_privs(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "nnp")?;
    let t = dir.join("t");
    std::fs::create_dir_all(&t)?;
    let ts = t.to_string_lossy().into_owned();
    let cat = crate::host::which("cat").ok_or_else(|| anyhow::anyhow!("no cat on PATH"))?;
    let holder = hold_mount_ns(
        ctx,
        &format!(
            "mount -t tmpfs -o size=8m,mode=0755 {} {ts}\ncp {} {ts}/cat\nchown 0:0 {ts}/cat\nchmod 4755 {ts}/cat",
            ctx.tag,
            cat.display()
        ),
    )?;
    let prog = format!("{ts}/cat");
    let mut cli = in_holder(ctx, &holder);
    cli.args(["setpriv", "--reuid", UNPRIV_S, "--regid", UNPRIV_S])
        .arg("--clear-groups");
    if v.isolated() {
        cli.arg("--no-new-privs");
    }
    let cli = run_ok(cli.args([&prog, "/proc/self/status"]))?;
    let nnp = if v.isolated() { "nnp" } else { "plain" };
    let kernel = run_ok(
        in_holder(ctx, &holder)
            .arg(helper_path())
            .args(["helper", "esc-exec-as", UNPRIV_S, nnp])
            .args([&prog, "/proc/self/status"]),
    )?;
    drop(holder);
    let layers = [("cli", &cli), ("kernel", &kernel)];
    for (layer, s) in layers {
        ctx.observe(&format!("{layer}_uid"), status_field(s, "Uid:"));
        ctx.observe(
            &format!("{layer}_no_new_privs"),
            status_field(s, "NoNewPrivs:"),
        );
    }
    for (layer, s) in layers {
        check_eq!(
            status_field(s, "Uid:").get(1).cloned(),
            Some(UNPRIV_S.to_string()),
            "{layer}: euid of the setuid-root copy"
        );
        check_eq!(
            status_field(s, "NoNewPrivs:").first().cloned(),
            Some("1".to_string()),
            "{layer}: NoNewPrivs of the setuid-root copy"
        );
    }
    Ok(())
}

/// The values of one `Key:` line of /proc/PID/status.
fn status_field(status: &str, key: &str) -> Vec<String> {
    crate::process::status_values(status, key.trim_end_matches(':'))
}
