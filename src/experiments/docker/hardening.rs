//! docker.hardening-flags: three `docker run` flags that harden a container
//! (moby's TestRunPIDsLimit, TestRunContainerWithReadonlyRootfs,
//! TestRunNoNewPrivSetuid), each run beside its control without the flag.

use super::{both, sh_once, NO_NET};
use crate::docker::{self as dk, Container};
use crate::experiment::{read, Ctx, Outcome, Problem, Variant};
use crate::host::HostFacts;
use crate::process::wait_until;
use crate::{check, check_eq};
use std::path::PathBuf;
use std::time::Duration;

/// The limit the row asks for: the init plus seven children.
const PIDS: u32 = 8;
/// A child shell forks ten sleeps; with the limit its fork fails once the
/// cgroup holds 8 (busybox sh then exits, so it runs apart from the init).
const FORKER: &str = "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 60 & done' 2>/tmp/forkerr; \
                      echo x > /tmp/done; exec sleep 60";
/// The unprivileged user of the setuid run.
const USER: u32 = 1000;

/// A static x86_64 program: `exit(geteuid() & 0xff)`. busybox drops a
/// setuid bit for its applets (FEATURE_SUID), so the image's own binary
/// cannot show the euid a setuid exec gave; this can: 0 for root, 232 for
/// uid 1000.
pub fn euid_probe_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    // mov eax,107 (geteuid); syscall; mov edi,eax; mov eax,60 (exit); syscall
    const CODE: [u8; 16] = [
        0xb8, 0x6b, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05,
    ];
    let total = (64 + 56 + CODE.len()) as u64;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&0x3eu16.to_le_bytes()); // x86_64
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(BASE + 120).to_le_bytes()); // entry: the code
    b.extend_from_slice(&64u64.to_le_bytes()); // program headers
    b.extend_from_slice(&0u64.to_le_bytes()); // no sections
    b.extend_from_slice(&0u32.to_le_bytes());
    for h in [64u16, 56, 1, 0, 0, 0] {
        b.extend_from_slice(&h.to_le_bytes());
    }
    b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for q in [0, BASE, BASE, total, total, 0x1000] {
        b.extend_from_slice(&q.to_le_bytes());
    }
    b.extend_from_slice(&CODE);
    b
}

/// A `printf` argument that writes `bytes` (octal escapes: busybox printf
/// takes them, and the image has no other way in without `docker cp`).
fn printf_octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

pub(super) fn hardening_flags(ctx: &mut Ctx, v: Variant) -> Outcome {
    if std::env::consts::ARCH != "x86_64" {
        return Err(Problem::Unmet(format!(
            "the setuid probe is x86_64 machine code; this host is {}",
            std::env::consts::ARCH
        )));
    }
    let on = v.isolated();
    let mut ctx2 = ctx.fork();
    let (pids, (ro, nnp)) = both(
        || pids_run(ctx, on),
        || {
            let mut ctx3 = ctx2.fork();
            both(|| ro_run(&mut ctx2, on), || nnp_run(&mut ctx3, on))
        },
    );
    let (pids_max, current, forkerr) = pids?;
    let (ro_status, ro_err, root_mount) = ro?;
    let (nnp_status, suid_status) = nnp?;
    let eagain = forkerr.contains("can't fork: Resource temporarily unavailable");
    let erofs = ro_status != 0 && ro_err.contains("Read-only file system");
    let root_opts = root_mount.split(' ').nth(5).unwrap_or_default().to_string();
    ctx.observe("pids_max", &pids_max);
    ctx.observe("pids_current", current);
    ctx.observe("fork_errors", forkerr.lines().count());
    ctx.observe("readonly_write_status", ro_status);
    ctx.observe("readonly_write_stderr", &ro_err);
    ctx.observe("root_mount_options", &root_opts);
    ctx.measure("root_mountinfo", &root_mount);
    ctx.observe("no_new_privs", &nnp_status);
    ctx.observe("setuid_exec_status", suid_status);
    // Each flag's verdict, so the control shows all three fall without it
    // (the checks below stop at the first).
    let held = serde_json::json!({
        "pids_limit": pids_max == PIDS.to_string() && current <= u64::from(PIDS) && eagain,
        "read_only": erofs,
        "no_new_privileges": nnp_status == "1" && suid_status == (USER & 0xff) as i32,
    });
    ctx.observe("held", &held);
    check_eq!(pids_max.as_str(), "8", "the container's host pids.max");
    check!(
        current <= u64::from(PIDS) && eagain,
        "the 9th process was not refused (EAGAIN): pids.current {current}, fork errors {forkerr:?}"
    );
    check!(
        erofs,
        "a write to / with --read-only: status {ro_status}, {ro_err:?}"
    );
    check_eq!(
        nnp_status.as_str(),
        "1",
        "NoNewPrivs of the --user {USER} init"
    );
    check_eq!(
        suid_status,
        (USER & 0xff) as i32,
        "euid & 0xff of a setuid-root exec under no-new-privileges (0 = root)"
    );
    Ok(())
}

/// `--pids-limit 8`: the init forks ten sleeps; the host's pids.max, the
/// count once it has tried, and the shell's fork errors (read through the
/// init's root, as an exec would be one process too many).
fn pids_run(ctx: &mut Ctx, on: bool) -> anyhow::Result<(String, u64, String)> {
    let limit = PIDS.to_string();
    let mut opts = NO_NET.to_vec();
    if on {
        opts.extend(["--pids-limit", &limit]);
    }
    let c = dk::run_detached(ctx, &opts, &["sh", "-c", FORKER])?;
    let pid = dk::init_pid(ctx, &c)?;
    let root = PathBuf::from(format!("/proc/{pid}/root/tmp"));
    if !wait_until(Duration::from_secs(20), || root.join("done").exists()) {
        anyhow::bail!("the container's init never finished forking");
    }
    let dir = pids_cgroup(pid)?;
    let max = read(dir.join("pids.max"))?.trim().to_string();
    let current = read(dir.join("pids.current"))?.trim().parse()?;
    let err = read(root.join("forkerr"))?;
    Ok((max, current, err))
}

/// The pids cgroup directory of a host process (v1 pids hierarchy, or v2).
fn pids_cgroup(pid: i32) -> anyhow::Result<PathBuf> {
    let host = HostFacts::get();
    let text = read(format!("/proc/{pid}/cgroup"))?;
    let (mnt, path) = match host.cgroup.v1_mounts.get("pids") {
        Some(m) => (m.clone(), super::cgroup_path(&text, Some("pids"))),
        None => (
            host.cgroup.v2_mount.clone().unwrap_or_default(),
            super::cgroup_path(&text, None),
        ),
    };
    let path = path.ok_or_else(|| anyhow::anyhow!("no pids cgroup of pid {pid}: {text}"))?;
    Ok(mnt.join(path.trim_start_matches('/')))
}

/// `--read-only`: a write to `/`, its status and message, and the root's
/// mountinfo line as the container sees it.
fn ro_run(ctx: &mut Ctx, on: bool) -> anyhow::Result<(i32, String, String)> {
    let mut opts = NO_NET.to_vec();
    if on {
        opts.push("--read-only");
    }
    let script = "touch /isoc-ro; echo status=$? >&2; grep ' / / ' /proc/self/mountinfo";
    let (_c, r) = sh_once(ctx, "ro", &opts, script)?;
    let status = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("status="))
        .and_then(|s| s.trim().parse().ok());
    let Some(status) = status else {
        anyhow::bail!(
            "the --read-only probe printed no status: {}",
            r.stderr.trim()
        );
    };
    let err = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("status="))
        .collect::<Vec<_>>()
        .join("\n");
    Ok((status, err, r.stdout.trim().to_string()))
}

/// `--user 1000 --security-opt no-new-privileges`: NoNewPrivs of the init,
/// and the exit status of the euid probe made setuid root in the container.
fn nnp_run(ctx: &mut Ctx, on: bool) -> anyhow::Result<(String, i32)> {
    let user = USER.to_string();
    let mut opts = NO_NET.to_vec();
    opts.extend(["--user", &user]);
    if on {
        opts.extend(["--security-opt", "no-new-privileges"]);
    }
    let c = dk::run_shell(ctx, &opts)?;
    let pid = dk::init_pid(ctx, &c)?;
    let status = read(format!("/proc/{pid}/status"))?;
    let nnp = status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    make_setuid_probe(ctx, &c)?;
    let r = dk::exec(ctx, &c, &["/tmp/euid"])?;
    Ok((nnp, r.shell_status()))
}

/// Writes the probe as root inside the container and sets its setuid bit.
fn make_setuid_probe(ctx: &Ctx, c: &Container) -> anyhow::Result<()> {
    let script = format!(
        "printf '{}' > /tmp/euid && chmod 4755 /tmp/euid && ls -ln /tmp/euid",
        printf_octal(&euid_probe_elf())
    );
    let r =
        crate::process::run(dk::docker(ctx).args(["exec", "-u", "0", &c.id, "sh", "-c", &script]))?;
    if !r.success() || !r.stdout.starts_with("-rwsr-xr-x") {
        anyhow::bail!(
            "making the setuid probe: {} {}",
            r.stdout.trim(),
            r.stderr.trim()
        );
    }
    Ok(())
}
