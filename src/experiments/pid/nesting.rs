//! pid.nesting-limits: the kernel's 32 levels of pid and user namespaces.

use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::nsfs::Nesting;
use crate::process::{run, run_ok};
use crate::{broken, check, check_eq};

/// MAX_PID_NS_LEVEL, and the least LTP asks of user namespaces.
const LIMIT: u32 = 32;

/// `unshare OPTS…` nested `n` times around a shell that says it got there
/// and tries one level more: whether level `n` was reached, and how the
/// next unshare(1) ended. One chain shows both sides of the limit.
fn nested_cli(ctx: &Ctx, opts: &[&str], n: u32) -> anyhow::Result<(bool, String)> {
    let mut c = ctx.cmd("unshare");
    c.args(opts);
    for _ in 1..n {
        c.arg("unshare").args(opts);
    }
    let next = format!("echo reached; exec unshare {} true", opts.join(" "));
    let r = run(c.args(["sh", "-c", &next]))?;
    let why = if r.success() {
        "ok".into()
    } else if r.stderr.contains("No space left on device") {
        "ENOSPC".into()
    } else {
        format!("exit {}: {}", r.shell_status(), r.stderr.trim())
    };
    Ok((r.stdout.trim() == "reached", why))
}

pub(super) fn nesting_limits(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let mut kernel = Vec::new();
    for kind in ["pid", "user"] {
        let n: Nesting =
            serde_json::from_str(run_ok(ctx.helper().args(["ns-nesting", kind]))?.trim())?;
        if n.depth == 0 {
            broken!("not one {kind} namespace could be made: {}", n.stopped_by);
        }
        kernel.push(n);
    }
    // unshare(1) nested to the depth unshare(2) reached, and one more.
    let mut cli = std::collections::BTreeMap::new();
    for (n, opts) in kernel.iter().zip([&["--pid", "--fork"][..], &["-r"][..]]) {
        cli.insert(n.kind.clone(), nested_cli(ctx, opts, n.depth)?);
    }
    ctx.observe("kernel", &kernel);
    ctx.observe("cli_reached_depth_and_next", &cli);
    let (pid, user) = (&kernel[0], &kernel[1]);
    check_eq!(pid.depth, LIMIT, "pid namespaces nested by unshare(2)");
    // The kernel refuses a user ns whose parent is past level 32, so the
    // levels below the initial one are 33: LTP userns07 asks "at least 32".
    check!(
        user.depth >= LIMIT,
        "user namespaces nested by unshare(2): {} < {LIMIT}",
        user.depth
    );
    for n in &kernel {
        check_eq!(
            n.stopped_by.as_str(),
            "ENOSPC",
            "unshare(2) of {} ns level {}",
            n.kind,
            n.depth + 1
        );
        let got = cli.get(&n.kind).cloned().unwrap_or_default();
        check_eq!(
            got,
            (true, "ENOSPC".to_string()),
            "unshare(1) nested {} deep (reached?) and one more ({})",
            n.depth,
            n.kind
        );
    }
    Ok(())
}
