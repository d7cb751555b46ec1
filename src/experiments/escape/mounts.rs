//! Mount boundaries of user namespaces: flags locked by a more privileged
//! mount ns (CVE-2014-5206/5207), overlay copy-up of unmapped files
//! (CVE-2023-0386), and which filesystems uid 0 of a user ns may mount
//! (CVE-2022-0185's surface).

use super::{hold_mount_ns, in_holder, kv_lines, op_in_holder, open_dir, UNPRIV_S};
use crate::experiment::{Ctx, Outcome, Variant};
use crate::experiments::mnt::mnt_guard;
use crate::helper::mount_api::REMOUNTS;
use crate::process::run_ok;
use crate::{check, check_eq};
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
        mnt_guard(),
        ctx.tag
    );
    let holder = hold_mount_ns(ctx, &setup)?;
    let script: String = REMOUNTS
        .iter()
        .map(|(name, opts)| {
            format!("if e=$(mount -o remount,bind,{opts} {ts} 2>&1); then echo {name}=ok; else echo \"{name}=$(echo \"$e\" | head -1)\"; fi\n")
        })
        .chain(std::iter::once(format!(
            "echo options_after=$(findmnt -n -o VFS-OPTIONS --mountpoint {ts})\n"
        )))
        .collect();
    let flags = if v.isolated() { "-Urm" } else { "-m" };
    let cli = kv_lines(
        &run_ok(in_holder(ctx, &holder).args([
            "unshare",
            flags,
            "sh",
            "-c",
            &format!("{}{script}", mnt_guard()),
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
