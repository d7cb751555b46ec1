//! Mount boundaries of user namespaces: flags locked by a more privileged
//! mount ns (CVE-2014-5206/5207), overlay copy-up of unmapped files
//! (CVE-2023-0386), and which filesystems uid 0 of a user ns may mount
//! (CVE-2022-0185's surface).

use super::{hold_mount_ns, in_holder, kv_lines, op_in_holder, open_dir, UNPRIV_S};
use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::mount_api::REMOUNTS;
use crate::namespaces::sh_guard;
use crate::process::run_ok;
use crate::{broken, check, check_eq};
use std::collections::BTreeMap;

// -------------------------------------------------- esc.mount-flags-locked

/// Why the host is safe: the tmpfs is the suite's, mounted only in the
/// holder's private mount ns; every remount runs in a copy of that ns.
pub(super) fn mount_flags_locked(ctx: &mut Ctx, v: Variant) -> Outcome {
    let t = open_dir(ctx, "locked-flags")?.join("t");
    std::fs::create_dir_all(&t)?;
    let ts = t.to_string_lossy().into_owned();
    let setup = format!(
        "{}mount -t tmpfs -o ro,nosuid,nodev,noexec,size=1m {} {ts}",
        sh_guard(&["mnt"]),
        ctx.tag
    );
    let holder = hold_mount_ns(ctx, &setup)?;
    let script = remount_script(&ts);
    let flags = if v.isolated() { "-Urm" } else { "-m" };
    let cli = kv_lines(
        &run_ok(in_holder(ctx, &holder).args([
            "unshare",
            flags,
            "sh",
            "-c",
            &format!("{}{script}", sh_guard(&["mnt"])),
        ]))?
        .replace(&ts, "T"),
    );
    let ns: &[&str] = if v.isolated() {
        &["--ns", "user,mnt", "--map-root-to", UNPRIV_S]
    } else {
        &["--ns", "mnt"]
    };
    let kernel: BTreeMap<String, String> =
        op_in_holder(ctx, &holder, Some(ns), &["mnt-remount-flags", &ts])?;
    drop(holder);
    ctx.observe("kernel", &kernel);
    ctx.observe("cli", &cli);
    judge_locked(&kernel, &cli)
}

/// Each of `REMOUNTS` by mount(8), then the options findmnt shows.
fn remount_script(ts: &str) -> String {
    REMOUNTS
        .iter()
        .map(|(name, opts)| {
            format!("if e=$(mount -o remount,bind,{opts} {ts} 2>&1); then echo {name}=ok; else echo \"{name}=$(echo \"$e\" | head -1)\"; fi\n")
        })
        .chain(std::iter::once(format!(
            "echo options_after=$(findmnt -n -o VFS-OPTIONS --mountpoint {ts})\n"
        )))
        .collect()
}

fn judge_locked(kernel: &BTreeMap<String, String>, cli: &BTreeMap<String, String>) -> Outcome {
    let has_all = |o: Option<&String>| {
        o.is_some_and(|o| {
            ["ro", "nosuid", "nodev", "noexec"]
                .iter()
                .all(|f| o.split(',').any(|x| x == *f))
        })
    };
    for (name, _) in REMOUNTS.iter().filter(|(n, _)| *n != "keep_all") {
        check_eq!(
            kernel.get(*name).map(String::as_str),
            Some("EPERM"),
            "mount(2) MS_REMOUNT|MS_BIND {name}"
        );
        let c = cli.get(*name).map(String::as_str).unwrap_or("");
        check!(
            c.contains("permission denied"),
            "mount -o remount,bind ({name}): {c:?}"
        );
    }
    check!(
        has_all(kernel.get("options_after")),
        "mountinfo options after the remounts (helper): {:?}",
        kernel.get("options_after")
    );
    check!(
        has_all(cli.get("options_after")),
        "findmnt options after the remounts: {:?}",
        cli.get("options_after")
    );
    check_eq!(
        kernel.get("keep_all").map(String::as_str),
        Some("ok"),
        "a remount keeping ro,nosuid,nodev,noexec (helper)"
    );
    check_eq!(
        cli.get("keep_all").map(String::as_str),
        Some("ok"),
        "mount -o remount,bind keeping all four flags"
    );
    Ok(())
}

// ---------------------------------------------- esc.overlay-copyup-unmapped

/// The lower file's owner: a host uid the namespace does not map (the
/// isolated run), or the mapped 100000 (the control).
const UNMAPPED: u32 = 12_345;

/// lower/f (0666, owned by `owner`), upper and work owned by 100000 (the
/// namespace's root), merged: one set per layer.
fn overlay_dirs(ctx: &mut Ctx, name: &str, owner: u32) -> anyhow::Result<[String; 4]> {
    use std::os::unix::fs::PermissionsExt;
    let d = open_dir(ctx, name)?;
    let ids = |u: u32| {
        (
            Some(nix::unistd::Uid::from_raw(u)),
            Some(nix::unistd::Gid::from_raw(u)),
        )
    };
    let mut out = Vec::new();
    for sub in ["lower", "upper", "work", "merged"] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        if sub == "upper" || sub == "work" {
            let (u, g) = ids(100_000);
            nix::unistd::chown(&p, u, g)?;
        }
        out.push(p.to_string_lossy().into_owned());
    }
    let f = d.join("lower/f");
    std::fs::write(&f, "lower\n")?;
    // No setuid or setgid bit, ever: a plain 0666 file.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666))?;
    let (u, g) = ids(owner);
    nix::unistd::chown(&f, u, g)?;
    Ok([
        out[0].clone(),
        out[1].clone(),
        out[2].clone(),
        out[3].clone(),
    ])
}

/// The upper dir as the host sees it: each entry with its owner uid.
fn upper_seen(upper: &str) -> anyhow::Result<BTreeMap<String, u32>> {
    use std::os::unix::fs::MetadataExt;
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(upper)?.flatten() {
        m.insert(
            e.file_name().to_string_lossy().into_owned(),
            e.metadata()?.uid(),
        );
    }
    Ok(m)
}

/// The CLI twin: mount(8) of the overlay and `echo >>` through it, as uid
/// 0 of `unshare -Urm` run by uid 100000, in the holder's mount ns.
fn copyup_cli(
    ctx: &Ctx,
    holder: &crate::process::Spawned,
    [cl, cu, cw, cm]: [&str; 4],
) -> anyhow::Result<BTreeMap<String, String>> {
    let script = format!(
        "{}if e=$(mount -t overlay overlay -o lowerdir={cl},upperdir={cu},workdir={cw} {cm} 2>&1); then echo mount=ok; else echo \"mount=$e\"; fi\n\
         if e=$( (echo more >> {cm}/f) 2>&1); then echo open_for_write=ok; else echo \"open_for_write=${{e##*: }}\"; fi",
        sh_guard(&["mnt"])
    );
    Ok(kv_lines(&run_ok(
        in_holder(ctx, holder)
            .arg("setpriv")
            .args(["--reuid", UNPRIV_S, "--regid", UNPRIV_S, "--clear-groups"])
            .args(["unshare", "-Urm", "sh", "-c", &script]),
    )?))
}

/// Why an overlay cannot be tried here, from the mount's errno.
fn overlay_unmet(mount: &str) -> Option<String> {
    match mount {
        "ENODEV" => {
            Some("no overlay filesystem in this kernel (CONFIG_OVERLAY_FS, module overlay)".into())
        }
        "EPERM" | "EINVAL" => Some(format!(
            "overlay cannot be mounted in a user namespace here ({mount}): kernel older than 5.11"
        )),
        _ => None,
    }
}

/// Why the host is safe: every dir is the suite's scratch; the overlay is
/// mounted only in a user-owned mount ns made inside the holder's private
/// one, and dies with it; the file is a plain 0666 file, never setuid.
pub(super) fn overlay_copyup_unmapped(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::helper::mount_api::Copyup;
    let owner = if v.isolated() { UNMAPPED } else { 100_000 };
    let [cl, cu, cw, cm] = overlay_dirs(ctx, "ovl-cli", owner)?;
    let [kl, ku, kw, km] = overlay_dirs(ctx, "ovl-kernel", owner)?;
    let holder = hold_mount_ns(ctx, &sh_guard(&["mnt"]))?;
    let cli = copyup_cli(ctx, &holder, [&cl, &cu, &cw, &cm])?;
    let ns: &[&str] = &["--ns", "user,mnt", "--map-root-to", UNPRIV_S];
    let kernel: Copyup = op_in_holder(
        ctx,
        &holder,
        Some(ns),
        &["overlay-copyup", &kl, &ku, &kw, &km, "f"],
    )?;
    drop(holder);
    let (cli_upper, k_upper) = (upper_seen(&cu)?, upper_seen(&ku)?);
    ctx.observe(
        "lower_owner",
        if v.isolated() {
            "unmapped uid"
        } else {
            "mapped uid 100000"
        },
    );
    ctx.observe("cli", &cli);
    ctx.observe("kernel", &kernel);
    ctx.observe(
        "upper_from_host",
        BTreeMap::from([("cli", &cli_upper), ("kernel", &k_upper)]),
    );
    if let Some(why) = overlay_unmet(&kernel.mount) {
        return Err(crate::experiment::Problem::Unmet(why));
    }
    check_eq!(
        kernel.open_for_write.as_str(),
        "EOVERFLOW",
        "copy-up of a file owned by an unmapped uid (helper)"
    );
    check_eq!(
        cli.get("open_for_write").map(String::as_str),
        Some("Value too large for defined data type"),
        "`echo >> f` through the overlay of `unshare -Urm`"
    );
    check!(
        k_upper.is_empty() && cli_upper.is_empty(),
        "the upper dirs, seen from the host: {k_upper:?} {cli_upper:?}"
    );
    Ok(())
}

// ------------------------------------------------------ esc.userns-mount-gate

/// A 16 MiB ext4 image under the row's scratch dir, attached (read-only)
/// to a loop device that teardown detaches; the sweeper finds it by the
/// image's path after a SIGKILL (`loopdev`).
fn suite_loop_image(ctx: &mut Ctx, dir: &std::path::Path) -> anyhow::Result<String> {
    let img = dir.join("img.ext4");
    std::fs::File::create(&img)?.set_len(16 << 20)?;
    run_ok(ctx.cmd("mkfs.ext4").args(["-q", "-F"]).arg(&img))?;
    let dev = crate::loopdev::attach(&img)?.dev.display().to_string();
    let d2 = dev.clone();
    ctx.defer("detach the suite's loop device", move || {
        if let Err(e) = crate::loopdev::detach(&d2) {
            eprintln!("isocheck: {e}");
        }
    });
    Ok(dev)
}

fn gate_dirs(ctx: &mut Ctx) -> anyhow::Result<String> {
    use crate::helper::mount_api::GATE_TYPES;
    let d = open_dir(ctx, "gate")?;
    let subs = GATE_TYPES.iter().copied().chain([
        "ovl-lower",
        "ovl-upper",
        "ovl-work",
        "cli-tmpfs",
        "cli-ext4",
    ]);
    for s in subs {
        let p = d.join(s);
        std::fs::create_dir_all(&p)?;
        if s == "ovl-upper" || s == "ovl-work" {
            let (u, g) = (
                nix::unistd::Uid::from_raw(100_000),
                nix::unistd::Gid::from_raw(100_000),
            );
            nix::unistd::chown(&p, Some(u), Some(g))?;
        }
    }
    Ok(d.to_string_lossy().into_owned())
}

/// The CLI twin: mount(8) of tmpfs and of the image's ext4, as uid 0 of
/// `unshare -Urm` run by uid 100000 (the control: real root), in the holder.
fn gate_cli(
    ctx: &Ctx,
    v: Variant,
    holder: &crate::process::Spawned,
    d: &str,
    dev: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let script = format!(
        "{}for t in tmpfs ext4; do if [ $t = ext4 ]; then src={dev}; else src=isocheck; fi\n\
         if e=$(mount -t $t -o ro $src {d}/cli-$t 2>&1); then echo $t=ok; umount {d}/cli-$t; else echo \"$t=$(echo \"$e\" | head -1)\"; fi; done",
        sh_guard(&["mnt"])
    );
    let mut c = in_holder(ctx, holder);
    if v.isolated() {
        c.arg("setpriv")
            .args(["--reuid", UNPRIV_S, "--regid", UNPRIV_S, "--clear-groups"])
            .args(["unshare", "-Urm"]);
    }
    Ok(kv_lines(
        &run_ok(c.args(["sh", "-c", &script]))?
            .replace(d, "D")
            .replace(dev, "LOOPDEV"),
    ))
}

/// Why the host is safe: ext4 is only ever mounted from the suite's own
/// loop image, in the holder's private mount ns (or in a user-owned copy
/// of it), and unmounted at once; the loop device is detached at teardown.
pub(super) fn userns_mount_gate(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::helper::mount_api::MountGate;
    if !std::path::Path::new("/dev/loop-control").exists() {
        return Err(crate::experiment::Problem::Unmet(
            "no loop devices: /dev/loop-control is missing (CONFIG_BLK_DEV_LOOP, module loop)"
                .into(),
        ));
    }
    let d = gate_dirs(ctx)?;
    let dev = suite_loop_image(ctx, std::path::Path::new(&d))?;
    let holder = hold_mount_ns(ctx, &sh_guard(&["mnt"]))?;
    let cli = gate_cli(ctx, v, &holder, &d, &dev)?;
    let ns: &[&str] = &[
        "--ns",
        "user,mnt,pid,net,ipc,cgroup",
        "--map-root-to",
        UNPRIV_S,
    ];
    let k: MountGate = op_in_holder(
        ctx,
        &holder,
        v.isolated().then_some(ns),
        &["mount-gate", &d, &dev],
    )?;
    drop(holder);
    let allowed: Vec<&String> = k
        .mount
        .iter()
        .filter(|(_, r)| *r == "ok")
        .map(|(t, _)| t)
        .collect();
    ctx.observe("allowed_types", &allowed);
    ctx.observe("kernel", &k);
    ctx.observe("cli", &cli);
    judge_gate(&k, &cli)
}

fn judge_gate(k: &crate::helper::mount_api::MountGate, cli: &BTreeMap<String, String>) -> Outcome {
    check_eq!(
        k.mount.get("ext4").map(String::as_str),
        Some("EPERM"),
        "mount(2) of ext4 from the suite's loop image"
    );
    let c_ext4 = cli.get("ext4").map(String::as_str).unwrap_or("");
    check!(
        c_ext4.contains("permission denied"),
        "mount -t ext4 of the suite's loop image: {c_ext4:?}"
    );
    let refused = if k.fsopen == "ok" {
        k.fsconfig_create.as_str()
    } else {
        k.fsopen.as_str()
    };
    check_eq!(
        refused,
        "EPERM",
        "ext4 through fsopen/fsconfig(FSCONFIG_CMD_CREATE)"
    );
    if k.mount.get("tmpfs").map(String::as_str) != Some("ok")
        || cli.get("tmpfs").map(String::as_str) != Some("ok")
    {
        broken!(
            "not even tmpfs could be mounted: {:?} / {:?}",
            k.mount.get("tmpfs"),
            cli.get("tmpfs")
        );
    }
    Ok(())
}
