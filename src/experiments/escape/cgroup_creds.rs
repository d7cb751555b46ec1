//! CVE-2021-4197: a `cgroup.procs` fd is judged by the credentials (and,
//! see cgroupns.lesser-ns-open, the cgroup namespace) of whoever opened it,
//! not of whoever writes through it (LTP cgroup_core01, kselftest
//! test_cgcore_lesser_euid_open).

use crate::cgroups::{proc_cgroup_path, Hierarchy};
use crate::experiment::{Ctx, Outcome, Problem, Variant};
use crate::experiments::cgroup::suite_group;
use crate::helper::cgcore::CgMigrate;
use crate::needs::Controller;
use crate::process::run;
use crate::{broken, check, check_eq};

/// The unprivileged uid that owns both groups' `cgroup.procs` but not their parent's.
const UID: u32 = 65534;

/// The body of `esc.cgroup-migrate-open-creds`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn cgroup_migrate_open_creds(ctx: &mut Ctx, v: Variant) -> Outcome {
    // kselftest's form is v2; v1's procs write checks the opener's euid too.
    let h = Hierarchy::v2_core()
        .or_else(|| Hierarchy::of(Controller::Pids))
        .ok_or_else(|| Problem::Unmet("no cgroup2 mount and no v1 pids hierarchy".into()))?;
    let a = suite_group(ctx, &h, "credsa")?;
    let b = suite_group(ctx, &h, "credsb")?;
    for g in [&a, &b] {
        std::os::unix::fs::chown(g.procs_file(), Some(UID), None)?;
    }
    let (pa, pb) = (a.procs_file(), b.procs_file());
    let mut c = ctx.helper();
    c.arg("cg-open-creds")
        .arg("--a")
        .arg(&pa)
        .arg("--b")
        .arg(&pb);
    if v.isolated() {
        c.args(["--uid", &UID.to_string()]);
    }
    let r = run(&mut c)?;
    if !r.success() {
        broken!(
            "cg-open-creds: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let m: CgMigrate = serde_json::from_str(r.stdout.trim())?;
    let now = proc_cgroup_path(&m.cgroup_after.join("\n"), h.controller.name(), h.version);
    let in_a = now.as_deref() == Some(format!("/{}", a.relative()).as_str());
    ctx.observe("hierarchy", h.version);
    ctx.observe("write_errno", &m.write_errno);
    ctx.observe("stayed_in_a", in_a);
    check_eq!(
        m.write_errno.as_deref(),
        Some("EACCES"),
        "writing its pid through B's procs fd opened as euid {UID}"
    );
    check!(in_a, "the child is in {now:?}, not A");
    Ok(())
}
