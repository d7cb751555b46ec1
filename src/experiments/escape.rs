//! Catalogue section 8: the known escape paths stay closed.
//!
//! Each row is a boundary that has been broken before (a CVE or a classic
//! container escape), asserted by behaviour with a control that crosses it
//! legitimately, so a kernel or runtime regression shows up as a failed row.
//!
//! Safety is the design constraint of every row: each attempt aims only at
//! objects the suite made for it (its own named cgroup v1 hierarchy, netns,
//! tmpfs, setuid copy, container). Mount work happens in private mount
//! namespaces held by a suite process (`unshare -m --propagation private`),
//! so the host's mount namespace never sees a mount of this section and the
//! kernel drops every one of them when the holder dies, whatever happens.
//! No row sets `notify_on_release` or creates a child cgroup, so no release
//! agent can ever run: even a `release_agent` write that unexpectedly
//! succeeds names `/bin/true`, is cleared at once, and is never triggered.

use crate::docker::{self as dk, Container};
use crate::experiment::{read, Ctx, Experiment, Outcome, Problem, Section, Variant};
use crate::helper::escape::{mount_entry, Connect, Mknod, Setns, UmountReveal};
use crate::helper::helper_path;
use crate::namespaces;
use crate::needs::{Need, Tool};
use crate::netns::Netns;
use crate::process::{run, run_ok, Spawned};
use crate::{broken, check, check_eq};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNPRIV_S: &str = "100000";

const NEEDS_UNSHARE: &[Need] = &[
    Need::Root,
    Need::UserNamespaces,
    Need::Tool(Tool::Unshare),
    Need::Tool(Tool::Nsenter),
    Need::Tool(Tool::Mount),
];
const NEEDS_DOCKER: &[Need] = &[
    Need::Root,
    Need::Docker,
    Need::Tool(Tool::Docker),
    Need::Tool(Tool::Busybox),
    Need::Tool(Tool::Tar),
];

macro_rules! exp {
    ($id:literal, $asserts:literal, $needs:expr, $control:literal, $body:ident) => {
        Experiment {
            id: $id,
            section: Section::Escape,
            asserts: $asserts,
            needs: $needs,
            control: Some($control),
            body: $body,
            exclusive: None,
        }
    };
}

pub static EXPERIMENTS: &[Experiment] = &[
    exp!("esc.release-agent-denied",
        "uid 0 of a new user+mnt+cgroup ns (mapped to 100000) cannot set a cgroup v1 release_agent: its v1 mount is refused or the write fails EPERM; the suite's own hierarchy's release_agent write fails EPERM (CVE-2022-0492)",
        &[Need::Root, Need::UserNamespaces, Need::Tool(Tool::Unshare), Need::Tool(Tool::Mount)],
        "real root in the init user ns: the mount and the write succeed (then cleared, unmounted)",
        release_agent_denied),
    exp!("esc.abstract-socket-per-netns",
        "an abstract unix socket bound in one suite netns is not reachable from another: connect fails ECONNREFUSED",
        &[Need::Root, Need::Tool(Tool::Ip)],
        "the client in the server's netns: connects and reads the reply",
        abstract_socket_per_netns),
    exp!("esc.locked-mounts",
        "after unshare -Urm, umount of a suite tmpfs covering a file fails EINVAL (MNT_LOCKED) and the file stays hidden",
        NEEDS_UNSHARE,
        "unshare -m without a user ns: the umount succeeds and the file shows",
        locked_mounts),
    exp!("esc.userns-no-device-nodes",
        "uid 0 of a new user ns (mapped to 100000) cannot mknod a char device (EPERM) in a suite tmpfs, nor mount proc without owning the pid ns",
        NEEDS_UNSHARE,
        "real root: mknod of the same device (1:3) succeeds",
        userns_no_device_nodes),
    exp!("esc.setns-out-denied",
        "uid 0 of a new user ns (mapped to 100000) cannot setns() into a suite netns owned by the init user ns: EPERM",
        &[Need::Root, Need::UserNamespaces, Need::Tool(Tool::Unshare), Need::Tool(Tool::Nsenter), Need::Tool(Tool::Ip)],
        "real root: setns succeeds (in a child that exits at once)",
        setns_out_denied),
    exp!("esc.no-new-privs",
        "with no_new_privs, exec of a suite setuid-root copy of cat keeps euid 100000 and its status shows NoNewPrivs: 1",
        &[Need::Root, Need::Tool(Tool::Unshare), Need::Tool(Tool::Nsenter), Need::Tool(Tool::Setpriv)],
        "without no_new_privs: euid 0",
        no_new_privs),
    exp!("esc.docker-masked-paths",
        "each existing path of the engine's MaskedPaths is a mount point reading empty, each ReadonlyPaths one is mounted ro, and writing /proc/sys/kernel/hostname fails 'Read-only file system'",
        NEEDS_DOCKER,
        "--security-opt systempaths=unconfined: none of those mounts, the write succeeds (the container's own uts ns)",
        docker_masked_paths),
    exp!("esc.docker-caps-dropped",
        "a default container's CapEff lacks SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_PTRACE; mount -t tmpfs and ip link add fail EPERM",
        NEEDS_DOCKER,
        "--cap-add SYS_ADMIN, seccomp and apparmor unconfined: the tmpfs mount succeeds",
        docker_caps_dropped),
];

// ---------------------------------------------------------------- shared

/// A scratch subdirectory every uid can traverse: the rows run commands as
/// the unprivileged uid (or as root of a user namespace mapped to it).
fn open_dir(ctx: &mut Ctx, name: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = ctx.scratch()?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    let d = root.join(name);
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    Ok(d)
}

/// A suite process holding a private mount namespace in which `setup` (a
/// shell script run as real root) made its mounts. Whatever the row does,
/// those mounts exist only there and die with the holder.
fn hold_mount_ns(ctx: &Ctx, setup: &str) -> anyhow::Result<Spawned> {
    let script = format!("set -e\n{setup}\necho ready\nexec sleep 600\n");
    let mut c = ctx.cmd("unshare");
    c.env("LC_ALL", "C")
        .args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let mut s = Spawned::start(&mut c)?;
    let l = s.read_line()?;
    if l != "ready" {
        anyhow::bail!("the mount-namespace holder printed {l:?}, not ready");
    }
    Ok(s)
}

/// `nsenter -t HOLDER -m ARGS…` as a tagged command.
fn in_holder(ctx: &Ctx, holder: &Spawned) -> Command {
    let mut c = ctx.cmd("nsenter");
    c.env("LC_ALL", "C")
        .args(["-t", &holder.pid().to_string(), "-m"]);
    c
}

/// `nsenter -t HOLDER -m isocheck helper [unshare NS… -- isocheck helper] OP
/// ARGS…`: a helper op in the holder's mount ns, inside new namespaces when
/// `ns` is given; its JSON line.
fn op_in_holder<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    holder: &Spawned,
    ns: Option<&[&str]>,
    op: &[&str],
) -> anyhow::Result<T> {
    let exe = helper_path();
    let mut c = in_holder(ctx, holder);
    c.arg(&exe).arg("helper");
    if let Some(ns) = ns {
        c.arg("unshare").args(ns).arg("--").arg(&exe).arg("helper");
    }
    last_json(&run_ok(c.args(op))?)
}

/// `key=value` lines of a shell probe.
fn kv_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The last line of a helper op's stdout as JSON (its reply).
fn last_json<T: serde::de::DeserializeOwned>(out: &str) -> anyhow::Result<T> {
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| anyhow::anyhow!("helper output {out:?}: {e}"))
}

fn is_read_only(opts: &str) -> bool {
    opts.split(',').any(|o| o == "ro")
}

// ------------------------------------------------ esc.release-agent-denied

/// Why the host is safe in this row, whatever the kernel does:
/// - the only hierarchies ever written are the suite's own named ones
///   (`none,name=isoc-…`: no controller, no process, no child cgroup), and
///   only after statfs and mountinfo show that very hierarchy on the path;
/// - `notify_on_release` is never set and no child cgroup exists, so the
///   kernel has nothing to release and never calls the agent;
/// - every write is `/bin/true`, read back, then cleared;
/// - the exploit's own choice (`memory`, `rdma`: host-shared hierarchies)
///   is only mounted, in the row's private mount ns, unmounted at once and
///   never opened;
/// - all mounts live in a private mount ns that dies with the row's child.
fn release_agent_denied(ctx: &mut Ctx, v: Variant) -> Outcome {
    if !has_cgroup_v1_fs(&read("/proc/filesystems")?) {
        return Err(Problem::Unmet(
            "needs a kernel with cgroup v1 (CONFIG_CGROUP_V1 / no cgroup_no_v1=all): no `cgroup` in /proc/filesystems".into(),
        ));
    }
    let dir = open_dir(ctx, "ra")?;
    for d in ["own", "try", "exploit"] {
        open_dir(ctx, &format!("ra/{d}"))?;
    }
    // Named hierarchies: `isoc-<run>-<n>-<role><k>` fits the kernel's
    // 64-byte limit for a hierarchy name and uses only allowed characters.
    let own = ctx.name("own");
    let tried = ctx.name("try");
    let kernel = release_agent_kernel(ctx, v, &dir, &own, &tried)?;
    let cli = release_agent_cli(ctx, v, &dir, &own, &tried)?;
    ctx.observe("kernel", &kernel);
    ctx.observe("cli", &cli);
    if kernel["own_mount"] != "ok" || cli.get("own_mount").map(String::as_str) != Some("ok") {
        return Err(Problem::Unmet(format!(
            "the kernel refuses even real root a named cgroup v1 hierarchy (kernel {}, mount(8) {:?}): cgroup v1 is not usable here",
            kernel["own_mount"],
            cli.get("own_mount")
        )));
    }
    check_release_agent(ctx, &kernel, &cli)
}

/// Kernel layer: `helper unshare --ns mnt` (a private mount ns as real root)
/// runs `esc-ra-own`, which mounts the suite's hierarchy and then runs the
/// attempt `esc-ra-try` either as uid 0 of a new user+mnt+cgroup ns mapped
/// to 100000 (isolated) or as itself (control).
fn release_agent_kernel(
    ctx: &Ctx,
    v: Variant,
    dir: &Path,
    own: &str,
    tried: &str,
) -> anyhow::Result<Value> {
    let exe = helper_path();
    let d = dir.to_string_lossy();
    let mut c = ctx.helper();
    c.args(["unshare", "--ns", "mnt", "--"]).arg(&exe).args([
        "helper",
        "esc-ra-own",
        &d,
        own,
        "--",
    ]);
    if v.isolated() {
        c.arg(&exe)
            .args(["helper", "unshare", "--ns", "user,mnt,cgroup"])
            .args(["--map-root-to", UNPRIV_S, "--"]);
    }
    c.arg(&exe).args(["helper", "esc-ra-try", &d, tried, own]);
    let out = run_ok(&mut c)?;
    let tries = out.lines().find(|l| l.contains("\"named_mount\""));
    let mut j: Value = last_json(&out)?;
    if let Some(t) = tries.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        if let (Some(o), Some(t)) = (j.as_object_mut(), t.as_object()) {
            o.extend(t.clone());
        }
    }
    Ok(j)
}

/// The CLI layer's probe, run by `sh` as uid 0 of the user ns (or as real
/// root in the control): mount(8) and dd(1) report the kernel's errors.
const RA_TRY_SH: &str = r#"
D=$1; TRY=$2
if m=$(mount -t cgroup -o none,name=$TRY cgroup $D/try 2>&1); then
  echo named_mount=ok
  if [ "$(stat -f -c %t $D/try)" = 27e0eb ] && grep -q " $D/try .* - cgroup .*name=$TRY" /proc/self/mountinfo \
     && [ "$(cat $D/try/notify_on_release)" = 0 ] && [ -z "$(find $D/try -mindepth 1 -type d)" ]; then
    w=$(printf %s /bin/true | dd of=$D/try/release_agent status=none 2>&1) && echo named_write=ok || echo "named_write=${w##*: }"
    printf '\n' > $D/try/release_agent 2>/dev/null
  else
    echo named_write=not-attempted-unverified-mount
  fi
  umount $D/try
else
  echo "named_mount=$(echo "$m" | head -1)"
fi
for c in memory rdma; do
  if m=$(mount -t cgroup -o $c cgroup $D/exploit 2>&1); then echo ${c}_mount=ok; umount $D/exploit; else echo "${c}_mount=$(echo "$m" | head -1)"; fi
done
w=$(printf %s /bin/true | dd of=$D/own/release_agent status=none 2>&1) && echo own_write=ok || echo "own_write=${w##*: }"
"#;

/// The CLI layer's setup, as real root in `unshare -m --propagation private`.
const RA_OWN_SH: &str = r#"
D=$1; OWN=$2; shift 2
mount -t cgroup -o none,name=$OWN cgroup $D/own 2>/dev/null || { echo own_mount=refused; exit 0; }
if [ "$(stat -f -c %t $D/own)" != 27e0eb ] || ! grep -q " $D/own .* - cgroup .*name=$OWN" /proc/self/mountinfo \
   || [ "$(cat $D/own/notify_on_release)" != 0 ] || [ -n "$(find $D/own -mindepth 1 -type d)" ]; then
  umount $D/own; echo own_mount=unverified; exit 0
fi
echo own_mount=ok
chown 100000:100000 $D/own/release_agent
"$@"
echo "own_after=$(cat $D/own/release_agent)"
printf '\n' > $D/own/release_agent
echo "own_cleared=$(cat $D/own/release_agent)"
umount $D/own
"#;

fn release_agent_cli(
    ctx: &Ctx,
    v: Variant,
    dir: &Path,
    own: &str,
    tried: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let try_sh = dir.join("try.sh");
    std::fs::write(&try_sh, RA_TRY_SH)?;
    let d = dir.to_string_lossy();
    let ts = try_sh.to_string_lossy();
    // The exploit's shape: an unprivileged user (100000) runs `unshare -UrmC`.
    let attempt: Vec<&str> = if v.isolated() {
        vec![
            "unshare",
            "--setuid",
            UNPRIV_S,
            "--setgid",
            UNPRIV_S,
            "unshare",
            "-UrmC",
            "--propagation",
            "private",
            "sh",
            &ts,
            &d,
            tried,
        ]
    } else {
        vec!["sh", &ts, &d, tried]
    };
    let out = run_ok(
        ctx.cmd("unshare")
            .env("LC_ALL", "C")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                RA_OWN_SH,
                "sh",
                &d,
                own,
            ])
            .args(&attempt),
    )?;
    Ok(kv_lines(&out))
}

fn check_release_agent(ctx: &mut Ctx, k: &Value, cli: &BTreeMap<String, String>) -> Outcome {
    let get = |key: &str| cli.get(key).cloned().unwrap_or_default();
    // Which gate held for a v1 hierarchy of the attacker's own: the mount,
    // or (where the kernel allows the mount) the release_agent write.
    let gate = |mount: &str, write: &str| match (mount, write) {
        ("ok", "EPERM") | ("ok", "Operation not permitted") => "write",
        ("ok", w) if w.starts_with("not-attempted") => "unverified",
        ("ok", _) => "none",
        _ => "mount",
    };
    let kgate = gate(
        k["named_mount"].as_str().unwrap_or(""),
        k["named_write"].as_str().unwrap_or(""),
    );
    let cgate = gate(&get("named_mount"), &get("named_write"));
    ctx.observe("named_gate_kernel", kgate);
    ctx.observe("named_gate_cli", cgate);
    if kgate == "unverified" || cgate == "unverified" {
        broken!("a named v1 hierarchy mounted, but the path did not verifiably hold the suite's fresh hierarchy: its release_agent was not written");
    }
    check!(
        kgate != "none",
        "uid 0 of the user ns mounted a named v1 hierarchy and wrote its release_agent ({})",
        k["named_write"]
    );
    check!(
        cgate != "none",
        "mount(8) in `unshare -UrmC` mounted a named v1 hierarchy and dd wrote its release_agent ({})",
        get("named_write")
    );
    check_eq!(
        k["own_write"].as_str(),
        Some("EPERM"),
        "write(2) to the suite hierarchy's release_agent (chowned to the writer) from the user ns"
    );
    check_eq!(
        get("own_write"),
        "Operation not permitted",
        "dd to the suite hierarchy's release_agent from `unshare -UrmC`"
    );
    check_eq!(
        k["own_cleared"].as_str(),
        Some(""),
        "release_agent after clearing (kernel layer)"
    );
    check_eq!(
        get("own_cleared"),
        "",
        "release_agent after clearing (CLI layer)"
    );
    check_eq!(
        k["own_after"].as_str(),
        Some(""),
        "release_agent after the attempt (kernel layer)"
    );
    check_eq!(
        get("own_after"),
        "",
        "release_agent after the attempt (CLI layer)"
    );
    Ok(())
}

/// The kernel registers the cgroup v1 filesystem (`nodev\tcgroup`).
pub fn has_cgroup_v1_fs(filesystems: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("cgroup"))
}

// ------------------------------------------- esc.abstract-socket-per-netns

/// Why the host is safe: server and clients sit in netns the suite made
/// (`ip netns add isoc-…`); the host's netns never binds or connects, and
/// the abstract name carries the run's tag. A connect that unexpectedly
/// crosses reaches only the suite's own server.
fn abstract_socket_per_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
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
    ctx.observe("cli", &cli);
    ctx.observe("kernel", &kernel);
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
fn locked_mounts(ctx: &mut Ctx, v: Variant) -> Outcome {
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
fn userns_no_device_nodes(ctx: &mut Ctx, v: Variant) -> Outcome {
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
fn setns_out_denied(ctx: &mut Ctx, v: Variant) -> Outcome {
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
    ctx.observe("target_netns", ns.inode());
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
fn no_new_privs(ctx: &mut Ctx, v: Variant) -> Outcome {
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
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|r| r.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

// -------------------------------------------------- esc.docker-masked-paths

/// Why the host is safe: the only write is to /proc/sys/kernel/hostname of
/// a suite container whose uts ns is checked to differ from the host's
/// first; reads of masked files are capped at 64 bytes.
fn docker_masked_paths(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut opts = vec!["--network", "none"];
    if !v.isolated() {
        opts.extend(["--security-opt", "systempaths=unconfined"]);
    }
    let c = dk::run_shell(ctx, &opts)?;
    let info = dk::inspect(ctx, &c)?;
    // The control's own HostConfig lists none: ask the engine what a
    // default container gets, so both runs check the same paths.
    let (masked, readonly) = if v.isolated() {
        path_lists(&info)
    } else {
        default_lists(ctx)?
    };
    let pid = dk::init_pid(ctx, &c)?;
    let mountinfo = read(format!("/proc/{pid}/mountinfo"))?;
    let probe = probe_paths(ctx, &c, masked.iter().chain(&readonly))?;
    ctx.observe("masked_paths", &masked);
    ctx.observe("readonly_paths", &readonly);
    check!(
        !masked.is_empty() && !readonly.is_empty(),
        "the engine lists no masked or read-only paths"
    );
    let host_uts = namespaces::inode("self", "uts")?;
    if namespaces::inode(&pid.to_string(), "uts")? == host_uts {
        broken!("the container shares the host's uts ns: the hostname write is not attempted");
    }
    let host_name = nix::unistd::gethostname()?;
    let write = dk::exec(
        ctx,
        &c,
        &["sh", "-c", "echo esc-x > /proc/sys/kernel/hostname"],
    )?;
    check_eq!(
        nix::unistd::gethostname()?,
        host_name,
        "the host's hostname after the container's write"
    );
    ctx.observe("hostname_write_status", write.shell_status());
    ctx.observe("hostname_write_stderr", write.stderr.trim());
    check_masks(ctx, &mountinfo, &probe, &masked, &readonly)?;
    check!(
        !write.success() && write.stderr.contains("Read-only file system"),
        "echo x > /proc/sys/kernel/hostname exited {}: {}",
        write.shell_status(),
        write.stderr.trim()
    );
    Ok(())
}

/// MaskedPaths and ReadonlyPaths of a default container of this engine.
fn default_lists(ctx: &mut Ctx) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let c = dk::create(ctx, &["true"])?;
    let info = dk::inspect(ctx, &c)?;
    Ok(path_lists(&info))
}

/// `HostConfig.MaskedPaths` and `HostConfig.ReadonlyPaths` of `docker inspect`.
fn path_lists(info: &Value) -> (Vec<String>, Vec<String>) {
    let list = |k: &str| -> Vec<String> {
        info["HostConfig"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    (list("MaskedPaths"), list("ReadonlyPaths"))
}

/// Per path inside the container: `P|missing`, or `P|file|BYTES` (first 64
/// bytes read) or `P|dir|ENTRIES`.
fn probe_paths<'a>(
    ctx: &Ctx,
    c: &Container,
    paths: impl Iterator<Item = &'a String>,
) -> anyhow::Result<BTreeMap<String, (String, i64)>> {
    let mut script = String::new();
    for p in paths {
        script.push_str(&format!(
            "p='{p}'; if [ -d \"$p\" ]; then echo \"$p|dir|$(ls -A \"$p\" 2>/dev/null | wc -l)\"; \
             elif [ -e \"$p\" ]; then echo \"$p|file|$(head -c 64 \"$p\" 2>/dev/null | wc -c)\"; \
             else echo \"$p|missing|0\"; fi\n"
        ));
    }
    let r = dk::exec(ctx, c, &["sh", "-c", &script])?;
    Ok(r.stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let (p, k, n) = (f.next()?, f.next()?, f.next()?.trim().parse().ok()?);
            Some((p.to_string(), (k.to_string(), n)))
        })
        .collect())
}

fn check_masks(
    ctx: &mut Ctx,
    mountinfo: &str,
    probe: &BTreeMap<String, (String, i64)>,
    masked: &[String],
    readonly: &[String],
) -> Outcome {
    let mut seen = BTreeMap::new();
    for p in masked.iter().chain(readonly) {
        let (kind, n) = probe.get(p).cloned().unwrap_or(("unprobed".into(), -1));
        let entry = mount_entry(mountinfo, Path::new(p));
        seen.insert(p.clone(), json!({"kind": kind, "read": n, "mount": entry}));
    }
    ctx.observe("paths", &seen);
    for p in masked {
        let (kind, n) = probe.get(p).cloned().unwrap_or(("unprobed".into(), -1));
        if kind == "missing" {
            continue;
        }
        check!(
            mount_entry(mountinfo, Path::new(p)).is_some(),
            "masked path {p} is not a mount point in the container"
        );
        check_eq!(n, 0, "bytes or entries read from masked path {p} ({kind})");
    }
    for p in readonly {
        if probe.get(p).map(|(k, _)| k.as_str()) == Some("missing") {
            continue;
        }
        let e = mount_entry(mountinfo, Path::new(p));
        check!(
            e.as_ref().is_some_and(|(_, o, _)| is_read_only(o)),
            "read-only path {p} is not mounted ro in the container: {e:?}"
        );
    }
    Ok(())
}

// --------------------------------------------------- esc.docker-caps-dropped

const CAPS: &[(&str, u32)] = &[
    ("CAP_SYS_ADMIN", 21),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_PTRACE", 19),
];

fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
}

/// Why the host is safe: the tmpfs mount and the dummy link are attempted
/// in the suite container's own mount and (`--network none`) net ns; if
/// they worked they would vanish with the container.
fn docker_caps_dropped(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut opts = vec!["--network", "none"];
    if !v.isolated() {
        opts.extend(["--cap-add", "SYS_ADMIN"]);
        opts.extend(["--security-opt", "seccomp=unconfined"]);
        opts.extend(["--security-opt", "apparmor=unconfined"]);
    }
    let c = dk::run_shell(ctx, &opts)?;
    let pid = dk::init_pid(ctx, &c)?;
    let kernel = cap_eff(&read(format!("/proc/{pid}/status"))?);
    let cli = cap_eff(&dk::exec(ctx, &c, &["cat", "/proc/1/status"])?.stdout);
    let tmpfs = "mkdir -p /tmp/esc && mount -t tmpfs esc /tmp/esc";
    let mnt = dk::exec(ctx, &c, &["sh", "-c", tmpfs])?;
    let link = dk::exec(ctx, &c, &["ip", "link", "add", "esc0", "type", "dummy"])?;
    let said = |r: &crate::process::Ran| format!("{} {}", r.shell_status(), r.stderr.trim());
    ctx.observe("capeff_kernel", kernel.map(|c| format!("{c:016x}")));
    ctx.observe("capeff_cli", cli.map(|c| format!("{c:016x}")));
    ctx.observe("mount_tmpfs", said(&mnt));
    ctx.observe("ip_link_add", said(&link));
    // busybox mount(8) words EPERM and EACCES alike ("permission denied (are
    // you root?)"); CapEff below is the kernel's own account of why.
    let denied = |r: &crate::process::Ran| {
        !r.success()
            && (r.stderr.contains("Operation not permitted")
                || r.stderr.contains("permission denied"))
    };
    check!(denied(&mnt), "mount -t tmpfs inside: {}", said(&mnt));
    check!(
        denied(&link) && link.stderr.contains("Operation not permitted"),
        "ip link add inside: {}",
        said(&link)
    );
    check_eq!(
        kernel,
        cli,
        "CapEff of the init from the host and from inside"
    );
    let eff = kernel.unwrap_or(u64::MAX);
    for (name, bit) in CAPS {
        check!(
            eff & (1 << bit) == 0,
            "CapEff {eff:016x} of the init has {name}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_entry_reads_the_last_mount_on_a_path() {
        let mi = "22 1 0:5 / /proc rw,nosuid - proc proc rw\n\
                  30 22 0:5 /sys /proc/sys ro,nosuid - proc proc rw\n\
                  31 22 0:6 /null /proc/kcore rw,nosuid - devtmpfs udev rw,mode=755\n";
        let (t, o, _) = mount_entry(mi, Path::new("/proc/sys")).unwrap();
        assert_eq!((t.as_str(), is_read_only(&o)), ("proc", true));
        assert!(mount_entry(mi, Path::new("/proc/keys")).is_none());
        assert!(!is_read_only(
            &mount_entry(mi, Path::new("/proc/kcore")).unwrap().1
        ));
    }

    #[test]
    fn cap_eff_parses_docker_default() {
        let eff = cap_eff("CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n").unwrap();
        for (_, bit) in CAPS {
            assert_eq!(eff & (1 << bit), 0);
        }
        assert_ne!(eff & (1 << 0), 0, "CAP_CHOWN is in Docker's default set");
    }

    #[test]
    fn cgroup_v1_fs_is_found_by_its_exact_name() {
        assert!(has_cgroup_v1_fs(
            "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\n"
        ));
        assert!(!has_cgroup_v1_fs("nodev\tsysfs\nnodev\tcgroup2\n"));
    }

    #[test]
    fn kv_lines_splits_at_the_first_equals() {
        let m = kv_lines("named_mount=permission denied.\nown_after=\nx=a=b\n");
        assert_eq!(m["named_mount"], "permission denied.");
        assert_eq!(m["own_after"], "");
        assert_eq!(m["x"], "a=b");
    }
}
