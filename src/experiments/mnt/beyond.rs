//! The `mnt.` rows beyond the seed (LTP mountns03-04, kselftest
//! mount_setattr and proc-subset-pid). Every mount is made in a mount
//! namespace a suite process holds (`hold_mount_ns`) or in the helper's own
//! new one, on the suite's scratch directories, so it dies with that
//! namespace whatever the row does.

use crate::experiment::{Ctx, Outcome, Problem, Variant};
use crate::experiments::escape::{hold_mount_ns, in_holder, kv_lines, op_in_holder, open_dir};
use crate::helper::mount_api::{Idmap, ProcSubset, Rro, Slave};
use crate::namespaces::sh_guard;
use crate::process::{run, run_ok, Spawned};
use crate::{broken, check, check_eq};
use std::collections::BTreeMap;

// ------------------------------------------------------ mnt.proc-subset-pid

/// The CLI twin: mount(8) of proc (with `-o subset=pid` unless the
/// control) in `unshare -m --pid --fork`; the lookups, and the entries that
/// are not pids, self or thread-self.
fn proc_subset_cli(
    ctx: &Ctx,
    v: Variant,
    c: &str,
) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let opts = if v.isolated() { "-o subset=pid" } else { "" };
    let script = format!(
        "{}mount -t proc {opts} proc {c}\nfor e in $(ls -A {c}); do case $e in *[!0-9]*) echo other=$e;; *) echo pid=1;; esac; done\n\
         for f in sys sysrq-trigger cpuinfo; do if [ -e {c}/$f ]; then echo $f=present; else echo $f=absent; fi; done",
        sh_guard(&["mnt"])
    );
    let out = run_ok(
        ctx.cmd("unshare")
            .args(["-m", "--pid", "--fork", "sh", "-c", &script]),
    )?;
    let others = out
        .lines()
        .filter_map(|l| l.strip_prefix("other="))
        .filter(|e| *e != "self" && *e != "thread-self")
        .map(String::from)
        .collect();
    Ok((kv_lines(&out), others))
}

pub(super) fn proc_subset_pid(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "procsub")?;
    let (kd, cd) = (dir.join("kernel"), dir.join("cli"));
    std::fs::create_dir_all(&kd)?;
    std::fs::create_dir_all(&cd)?;
    let mut k = ctx.helper();
    k.arg("mnt-proc-subset").arg(&kd);
    if !v.isolated() {
        k.arg("--default");
    }
    let kernel: ProcSubset = serde_json::from_str(run_ok(&mut k)?.trim())?;
    let (cli, others) = proc_subset_cli(ctx, v, &cd.to_string_lossy())?;
    ctx.observe("kernel", &kernel);
    ctx.observe("cli_lookups", &cli);
    ctx.observe("cli_other_entries", &others);
    if kernel.mount == "EINVAL" && !v.isolated() {
        broken!("a default proc mount failed: EINVAL");
    }
    if kernel.mount == "EINVAL" {
        return Err(Problem::Unmet(
            "proc's subset=pid option is refused (EINVAL): kernel older than 5.8".into(),
        ));
    }
    for f in ["sys", "sysrq-trigger", "cpuinfo"] {
        check_eq!(
            kernel.lookups.get(f).map(String::as_str),
            Some("ENOENT"),
            "stat {f} under proc (subset=pid) by the helper"
        );
        check_eq!(
            cli.get(f).map(String::as_str),
            Some("absent"),
            "[ -e {f} ] under `mount -t proc -o subset=pid`"
        );
    }
    check!(
        kernel.other_entries.is_empty(),
        "proc (subset=pid) lists more than pids, self, thread-self: {:?}",
        kernel.other_entries
    );
    check!(
        others.is_empty(),
        "ls of proc (subset=pid) lists {others:?}"
    );
    if !kernel.has_pids || !cli.contains_key("pid") {
        broken!("the proc mount lists no pid directory at all");
    }
    Ok(())
}

// --------------------------------------------------- mnt.recursive-readonly

/// A tmpfs with two nested tmpfs under it, in the holder's namespace.
fn tree_setup(ctx: &Ctx, top: &str) -> String {
    format!(
        "{}mount -t tmpfs -o size=1m {tag} {top}\nmkdir {top}/a\nmount -t tmpfs -o size=1m {tag} {top}/a\n\
         mkdir {top}/a/b\nmount -t tmpfs -o size=1m {tag} {top}/a/b",
        sh_guard(&["mnt"]),
        tag = ctx.tag
    )
}

/// The change under test: the helper's mount_setattr (no mount(8) before
/// util-linux 2.39 sets ro recursively), or in the control mount(8)'s plain
/// `remount,ro,bind`. "ok", or what went wrong.
fn make_read_only(ctx: &Ctx, v: Variant, holder: &Spawned, t: &str) -> Result<String, Problem> {
    if v.isolated() {
        let r: Rro = op_in_holder(ctx, holder, None, &["mnt-rro", t])?;
        if r.setattr == "ENOSYS" {
            return Err(Problem::Unmet(
                "mount_setattr(2) is ENOSYS: kernel older than 5.12".into(),
            ));
        }
        return Ok(r.setattr);
    }
    let r = run(in_holder(ctx, holder).args(["mount", "-o", "remount,ro,bind", t]))?;
    Ok(if r.success() {
        "ok".into()
    } else {
        r.stderr.trim().to_string()
    })
}

type Probes = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, bool>,
);

/// A file create in each mount of the tree: by the helper (errno), by
/// touch (its message), and whether findmnt shows each mount ro.
fn write_probes(
    ctx: &Ctx,
    holder: &Spawned,
    dirs: &[(&str, String)],
    t: &str,
) -> anyhow::Result<Probes> {
    let args: Vec<String> = dirs.iter().map(|(n, d)| format!("{n}={d}")).collect();
    let mut op = vec!["mnt-write-probe"];
    op.extend(args.iter().map(String::as_str));
    let kernel: BTreeMap<String, String> = op_in_holder(ctx, holder, None, &op)?;
    let script: String = dirs
        .iter()
        .map(|(n, d)| {
            format!(
                "if e=$(touch {d}/cli 2>&1); then echo {n}=ok; else echo \"{n}=${{e##*: }}\"; fi\n"
            )
        })
        .collect();
    let cli = kv_lines(&run_ok(in_holder(ctx, holder).args(["sh", "-c", &script]))?);
    let findmnt = run_ok(in_holder(ctx, holder).args([
        "findmnt",
        "-R",
        "-n",
        "-r",
        "-o",
        "TARGET,VFS-OPTIONS",
        t,
    ]))?;
    let ro = findmnt
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, o)| (p.replace(t, "TOP"), o.split(',').any(|x| x == "ro")))
        .collect();
    Ok((kernel, cli, ro))
}

pub(super) fn recursive_readonly(ctx: &mut Ctx, v: Variant) -> Outcome {
    let top = open_dir(ctx, "rro")?.join("top");
    std::fs::create_dir_all(&top)?;
    let t = top.to_string_lossy().into_owned();
    let holder = hold_mount_ns(ctx, &tree_setup(ctx, &t))?;
    let change = make_read_only(ctx, v, &holder, &t)?;
    if change != "ok" {
        broken!("making {t} read-only: {change}");
    }
    let dirs = [
        ("top", t.clone()),
        ("a", format!("{t}/a")),
        ("b", format!("{t}/a/b")),
    ];
    let (kernel, cli, ro) = write_probes(ctx, &holder, &dirs, &t)?;
    drop(holder);
    ctx.observe("kernel_writes", &kernel);
    ctx.observe("cli_writes", &cli);
    ctx.observe("findmnt_ro", &ro);
    for (n, _) in &dirs {
        check_eq!(
            kernel.get(*n).map(String::as_str),
            Some("EROFS"),
            "creating a file in {n} (helper)"
        );
        check_eq!(
            cli.get(*n).map(String::as_str),
            Some("Read-only file system"),
            "touch in {n}"
        );
    }
    check!(
        ro.len() == 3 && ro.values().all(|r| *r),
        "findmnt -R VFS-OPTIONS: {ro:?}"
    );
    Ok(())
}

// ------------------------------------------------------- mnt.idmapped-mount

/// What the file looks like through the mount under test and the original.
#[derive(serde::Serialize)]
struct IdmapSeen {
    /// `stat -c %u:%g` through the mount looked at.
    stat_through_mount: String,
    /// stat(2) by the helper through it.
    stat_kernel_through_mount: String,
    /// `stat -c %u:%g` through the original mount.
    stat_original: String,
    /// findmnt lists `idmapped` among the new mount's options.
    findmnt_idmapped: bool,
}

fn idmap_seen(
    ctx: &Ctx,
    holder: &Spawned,
    look: &str,
    s: &str,
    d: &str,
) -> anyhow::Result<IdmapSeen> {
    let stat = |p: &str| -> anyhow::Result<String> {
        Ok(
            run_ok(in_holder(ctx, holder).args(["stat", "-c", "%u:%g", p]))?
                .trim()
                .to_string(),
        )
    };
    let k: BTreeMap<String, String> =
        op_in_holder(ctx, holder, None, &["mnt-owner", &format!("{look}/f")])?;
    let opts = run(in_holder(ctx, holder).args([
        "findmnt",
        "-n",
        "-o",
        "VFS-OPTIONS",
        "--mountpoint",
        d,
    ]))?;
    Ok(IdmapSeen {
        stat_through_mount: stat(&format!("{look}/f"))?,
        stat_kernel_through_mount: k.get("owner").cloned().unwrap_or_default(),
        stat_original: stat(&format!("{s}/f"))?,
        findmnt_idmapped: opts.stdout.split(',').any(|o| o.trim() == "idmapped"),
    })
}

/// Why idmapped tmpfs mounts cannot be tried on this kernel.
fn idmap_unmet(k: &Idmap) -> Option<String> {
    if k.open_tree == "ENOSYS" || k.idmap_detached == "ENOSYS" {
        return Some("open_tree/mount_setattr are ENOSYS: kernel older than 5.12".into());
    }
    let kv = crate::host::HostFacts::get().kernel_version;
    (k.idmap_detached == "EINVAL" && kv < (6, 3, 0)).then(|| {
        format!(
            "tmpfs supports idmapped mounts from kernel 6.3 (this kernel: {}.{})",
            kv.0, kv.1
        )
    })
}

pub(super) fn idmapped_mount(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "idmap")?;
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&dst)?;
    let (s, d) = (
        src.to_string_lossy().into_owned(),
        dst.to_string_lossy().into_owned(),
    );
    let setup = format!(
        "{}mount -t tmpfs -o size=1m {} {s}\necho x > {s}/f\nchown 0:0 {s}/f",
        sh_guard(&["mnt"]),
        ctx.tag
    );
    let holder = hold_mount_ns(ctx, &setup)?;
    let k: Idmap = op_in_holder(ctx, &holder, None, &["mnt-idmap", &s, &d])?;
    ctx.observe("kernel", &k);
    // Before looking through DST: where the kernel cannot idmap tmpfs
    // (6.1 self-built: EINVAL) nothing is mounted there to look at.
    if let Some(why) = idmap_unmet(&k) {
        return Err(Problem::Unmet(why));
    }
    // The control looks through the original mount, where nothing changed.
    let look = if v.isolated() { &d } else { &s };
    let seen = idmap_seen(ctx, &holder, look, &s, &d)?;
    drop(holder);
    ctx.observe("seen", &seen);
    judge_idmap(&k, &seen, v)
}

fn judge_idmap(k: &Idmap, seen: &IdmapSeen, v: Variant) -> Outcome {
    let through = if v.isolated() {
        "the idmapped mount"
    } else {
        "the original mount"
    };
    check_eq!(
        seen.stat_through_mount.as_str(),
        "10000:10000",
        "stat -c %u:%g of the 0:0 file through {through}"
    );
    check_eq!(
        seen.stat_kernel_through_mount.as_str(),
        "10000:10000",
        "stat(2) of the 0:0 file through {through}"
    );
    check_eq!(
        seen.stat_original.as_str(),
        "0:0",
        "stat through the original mount"
    );
    check_eq!(
        k.idmap_detached.as_str(),
        "ok",
        "MOUNT_ATTR_IDMAP on a detached clone"
    );
    check_eq!(
        k.move_mount.as_str(),
        "ok",
        "move_mount of the idmapped clone"
    );
    check_eq!(
        k.idmap_attached.as_str(),
        "EINVAL",
        "MOUNT_ATTR_IDMAP on the attached source mount"
    );
    check_eq!(
        k.idmap_initial_userns.as_str(),
        "EPERM",
        "MOUNT_ATTR_IDMAP with the initial user ns"
    );
    Ok(())
}

// ------------------------------------------ mnt.propagation-slave-unbindable

/// The holder's shared dir (bound on itself, made shared) and a dir to be
/// made unbindable.
fn shared_setup(sh: &str) -> String {
    format!(
        "{}mount --bind {sh} {sh}\nmount --make-shared {sh}\nmkdir -p {sh}/from-parent {sh}/from-copy",
        sh_guard(&["mnt"])
    )
}

/// mount(8) --bind of a dir made unbindable: "ok" or its first message line.
fn unbindable_cli(ctx: &Ctx, holder: &Spawned, u: &str, target: &str) -> anyhow::Result<String> {
    let script =
        format!("mount --bind {u} {u} && mount --make-unbindable {u} && mount --bind {u} {target}");
    let r = run(in_holder(ctx, holder).args(["sh", "-c", &script]))?;
    Ok(if r.success() {
        "ok".into()
    } else {
        r.stderr
            .lines()
            .next()
            .unwrap_or("")
            .replace(u, "U")
            .replace(target, "T")
    })
}

/// `unshare -m --propagation slave|unchanged sleep` in the holder's mount ns.
fn start_copy(ctx: &Ctx, v: Variant, holder: &Spawned) -> anyhow::Result<Spawned> {
    let prop = if v.isolated() { "slave" } else { "unchanged" };
    let args = ["unshare", "-m", "--propagation", prop, "sleep", "60"];
    Ok(Spawned::start(in_holder(ctx, holder).args(args))?.leader_first())
}

/// The CLI twin: `unshare -m --propagation slave|unchanged` copies the
/// holder's namespace; mount(8) in each, findmnt in the other.
fn slave_cli(
    ctx: &Ctx,
    v: Variant,
    sh: &str,
    u: &str,
    target: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let holder = hold_mount_ns(ctx, &shared_setup(sh))?;
    let mut copy = start_copy(ctx, v, &holder)?;
    let cp = crate::experiments::other_ns::find_comm(copy.pid(), "sleep")?.to_string();
    let seen = |who: &str, p: &str| -> anyhow::Result<String> {
        let r = run(ctx
            .cmd("findmnt")
            .args(["-n", "-N", who, "--mountpoint", p]))?;
        Ok(if r.success() { "yes" } else { "no" }.into())
    };
    let in_copy = || {
        let mut c = ctx.cmd("nsenter");
        c.args(["-t", &cp, "-m"]);
        c
    };
    let mut out = BTreeMap::new();
    let tmpfs = |at: String| {
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            ctx.tag.as_str(),
            &at,
        ]
        .map(String::from)
    };
    run_ok(in_holder(ctx, &holder).args(tmpfs(format!("{sh}/from-parent"))))?;
    out.insert(
        "parent_to_copy".to_string(),
        seen(&cp, &format!("{sh}/from-parent"))?,
    );
    run_ok(in_copy().args([
        "sh",
        "-c",
        &format!(
            "{}mount -t tmpfs -o size=1m {} {sh}/from-copy",
            sh_guard(&["mnt"]),
            ctx.tag
        ),
    ]))?;
    out.insert(
        "copy_to_parent".to_string(),
        seen(&holder.pid().to_string(), &format!("{sh}/from-copy"))?,
    );
    out.insert(
        "bind_unbindable".to_string(),
        unbindable_cli(ctx, &holder, u, target)?,
    );
    copy.kill();
    drop(holder);
    Ok(out)
}

pub(super) fn propagation_slave_unbindable(ctx: &mut Ctx, v: Variant) -> Outcome {
    let dir = open_dir(ctx, "slave")?;
    let mut paths = Vec::new();
    for n in [
        "k-shared", "k-unb", "k-target", "c-shared", "c-unb", "c-target",
    ] {
        let p = dir.join(n);
        std::fs::create_dir_all(&p)?;
        paths.push(p.to_string_lossy().into_owned());
    }
    let holder = hold_mount_ns(ctx, &shared_setup(&paths[0]))?;
    let mut op = vec!["mnt-slave", &paths[0], &paths[1], &paths[2]];
    if !v.isolated() {
        op.push("--shared");
    }
    let k: Slave = op_in_holder(ctx, &holder, None, &op)?;
    drop(holder);
    let cli = slave_cli(ctx, v, &paths[3], &paths[4], &paths[5])?;
    ctx.observe("kernel", &k);
    ctx.observe("cli", &cli);
    let get = |key: &str| cli.get(key).map(String::as_str);
    check!(
        !k.copy_to_parent,
        "a mount made in the {} copy shows in the parent (mount(2))",
        k.copy
    );
    check_eq!(
        get("copy_to_parent"),
        Some("no"),
        "a mount made in `unshare -m --propagation` copy, seen by findmnt in the parent"
    );
    if !k.parent_to_copy || get("parent_to_copy") != Some("yes") {
        broken!("the parent's mount did not reach the copy (kernel {}, cli {:?}): the shared setup is wrong", k.parent_to_copy, get("parent_to_copy"));
    }
    check_eq!(
        k.bind_unbindable.as_str(),
        "EINVAL",
        "mount(MS_BIND) of an unbindable dir"
    );
    check!(
        get("bind_unbindable").is_some_and(|e| e != "ok"),
        "mount --bind of an unbindable dir: {:?}",
        get("bind_unbindable")
    );
    Ok(())
}
