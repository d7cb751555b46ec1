//! The rows about seccomp: Docker's default profile, the project's profile
//! file, and seccomp=unconfined.

use super::{both, sh_once, NO_NET, PROFILE};
use crate::docker as dk;
use crate::experiment::{read, Ctx, Outcome, Problem, Variant};
use crate::process::Ran;
use crate::{check, check_eq};

/// `Seccomp:` of a /proc status text.
pub fn seccomp_mode(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

const SECCOMP_PROBE: &str = "grep Seccomp: /proc/self/status; unshare -U true; echo status=$?";

fn seccomp_result(r: &crate::process::Ran) -> (Option<u32>, Option<i32>) {
    let mode = seccomp_mode(&r.stdout);
    let status = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("status="))
        .and_then(|s| s.trim().parse().ok());
    (mode, status)
}

pub(super) fn default_seccomp(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let profile = ctx.scratch()?.join("docker-default-like.json");
    std::fs::write(&profile, PROFILE)?;
    let opt = format!("seccomp={}", profile.display());
    let mut ctx2 = ctx.fork();
    let (def, own) = both(
        || default_probe(ctx),
        || {
            sh_once(
                &mut ctx2,
                "par",
                &["--network", "none", "--security-opt", &opt],
                SECCOMP_PROBE,
            )
        },
    );
    let (host_view, def) = def?;
    let (_c, own) = own?;
    drop(ctx2);
    let (mode, status) = seccomp_result(&def);
    let (own_mode, own_status) = seccomp_result(&own);
    ctx.observe("host_view_seccomp", host_view);
    ctx.observe("seccomp", mode);
    ctx.observe("unshare_status", status);
    ctx.observe("unshare_stderr", def.stderr.trim());
    ctx.observe("profile_file_seccomp", own_mode);
    ctx.observe("profile_file_unshare_status", own_status);
    ctx.observe("profile_file_unshare_stderr", own.stderr.trim());
    check_eq!(
        host_view,
        Some(2),
        "Seccomp: of the container's init seen from the host"
    );
    check_eq!(mode, Some(2), "Seccomp: inside the container");
    check!(
        status.is_some_and(|s| s != 0),
        "unshare -U true was not refused (status {status:?})"
    );
    check!(
        def.stderr.contains("Operation not permitted"),
        "unshare -U: expected EPERM, got {:?}",
        def.stderr.trim()
    );
    check_eq!(own_mode, Some(2), "Seccomp: with the project's profile");
    check!(
        own_status.is_some_and(|s| s != 0),
        "unshare -U true was not refused by the project's profile"
    );
    check!(
        own.stderr.contains("Operation not permitted"),
        "project's profile: expected EPERM, got {:?}",
        own.stderr.trim()
    );
    Ok(())
}

/// Docker's default profile, seen from both sides: the host's view of a
/// running container's init (the kernel layer) and the probe run inside.
fn default_probe(ctx: &mut Ctx) -> anyhow::Result<(Option<u32>, Ran)> {
    let c = dk::run_shell(ctx, NO_NET)?;
    let pid = dk::init_pid(ctx, &c)?;
    let host_view = seccomp_mode(&read(format!("/proc/{pid}/status"))?);
    let r = dk::exec(ctx, &c, &["sh", "-c", SECCOMP_PROBE])?;
    Ok((host_view, r))
}

pub(super) fn seccomp_unconfined(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // The AppArmor label too: Ubuntu's userns restriction acts through it.
    let probe = format!("echo profile=$(cat /proc/self/attr/current 2>/dev/null); {SECCOMP_PROBE}");
    let (_c, r) = sh_once(
        ctx,
        "ctr",
        &["--network", "none", "--security-opt", "seccomp=unconfined"],
        &probe,
    )?;
    let (mode, status) = seccomp_result(&r);
    let profile = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("profile="))
        .and_then(crate::apparmor::profile);
    ctx.observe("seccomp", mode);
    ctx.observe("unshare_status", status);
    ctx.observe("unshare_stderr", r.stderr.trim());
    ctx.observe("apparmor_profile", &profile);
    check_eq!(mode, Some(0), "Seccomp: with seccomp=unconfined");
    if status != Some(0) {
        let sysctl = crate::apparmor::sysctl_text();
        if let Some(why) = crate::apparmor::userns_unmet(sysctl.as_deref(), profile.as_deref()) {
            return Err(Problem::Unmet(why));
        }
        if let Some(why) =
            crate::apparmor::profile_denies_userns(profile.as_deref(), r.stderr.as_str())
        {
            return Err(Problem::Unmet(why));
        }
    }
    check_eq!(status, Some(0), "unshare -U true with seccomp=unconfined");
    Ok(())
}
