//! What Docker adds on top of the namespaces: masked and read-only /proc
//! paths, and the dropped capabilities of a default container.

use super::is_read_only;
use crate::docker::{self as dk, Container};
use crate::experiment::{read, Ctx, Outcome, Variant};
use crate::helper::escape::mount_entry;
use crate::namespaces;
use crate::{broken, check, check_eq};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

// -------------------------------------------------- esc.docker-masked-paths

/// Why the host is safe: the only write is to /proc/sys/kernel/hostname of
/// a suite container whose uts ns is checked to differ from the host's
/// first; reads of masked files are capped at 64 bytes.
pub(super) fn docker_masked_paths(ctx: &mut Ctx, v: Variant) -> Outcome {
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

pub(super) const CAPS: &[(&str, u32)] = &[
    ("CAP_SYS_ADMIN", 21),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_PTRACE", 19),
];

pub(super) fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
}

/// Why the host is safe: the tmpfs mount and the dummy link are attempted
/// in the suite container's own mount and (`--network none`) net ns; if
/// they worked they would vanish with the container.
pub(super) fn docker_caps_dropped(ctx: &mut Ctx, v: Variant) -> Outcome {
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
