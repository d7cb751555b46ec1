//! The pids and cpu controllers' limits: pids.max and the CFS quota.

use super::*;

// ---------------------------------------------------------------------------
// cg.pids-max

const PIDS_MAX: u64 = 5;

/// The body of `cg.pids-max`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn pids_max(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Pids, "pids")?;
    g.set_pids_max(Limit::Value(PIDS_MAX))?;
    let read = g.pids_max()?;
    let before = g.pids_max_events()?;
    let procs = g.procs_file().to_string_lossy().into_owned();
    let r = run(ctx
        .helper()
        .args(["cg-fork", "--procs", &procs, "--max", "64"]))?;
    if !r.success() {
        broken!("cg-fork: status {}: {}", r.shell_status(), r.stderr.trim());
    }
    let out: CgFork = serde_json::from_str(r.stdout.trim())?;
    let after = g.pids_max_events()?;
    ctx.observe("pids_max", read);
    ctx.observe("fork", &out);
    ctx.measure("events_max_before", before);
    ctx.measure("events_max_after", after);
    let forked = out.forked as u64;
    check_eq!(
        out.errno.as_deref(),
        Some("EAGAIN"),
        "errno of the refused fork"
    );
    // The forking helper is the group's first process.
    check_eq!(
        forked + 1,
        PIDS_MAX,
        "processes in the group when fork failed"
    );
    check_eq!(after - before, 1, "pids.events max rise");
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.cpu-quota

// A 10% quota over 15 periods of 10 ms: more periods than the default
// 100 ms period gives in a second, in a seventh of it. The window is the
// row's whole cost (the child and its twin each burn a CPU for it; the
// control's unquota'd child another); the share is the same ratio: CFS
// refills the quota every period and carries an overrun (at most a 4 ms
// tick at HZ=250) as debt into the next, so the error over the window stays
// within one tick (2.7%, well under the 15% bound).
// Measured here: 0.100-0.109 of a CPU over 200 ms (load average 4).
const PERIOD_US: u64 = 10_000;
const QUOTA_US: u64 = 1_000;
const WINDOW_MS: &str = "150";
const CPU_WEIGHT: u64 = 16;

/// Starts `cg-burn` for `WINDOW_MS` in the group whose procs file is `procs`.
fn start_burn(ctx: &Ctx, procs: &std::path::Path) -> anyhow::Result<std::process::Child> {
    let procs = procs.to_string_lossy().into_owned();
    Ok(ctx
        .helper()
        .args(["cg-burn", "--procs", &procs, "--ms", WINDOW_MS])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?)
}

/// The CPU share (cpu time / wall time) a `cg-burn` child reports.
fn burn_share(child: std::process::Child) -> Result<(f64, CgBurn), Problem> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        broken!(
            "cg-burn: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let j: CgBurn = serde_json::from_slice(&out.stdout)?;
    let share = j.cpu_us / j.wall_us.max(1.0);
    Ok((share, j))
}

/// The twin's share, recorded as a measurement; a twin that got no more
/// than the cap itself means the host was too busy for the row to tell (the
/// control has no twin: its own child is unquota'd, so any share passes).
fn twin_reference(ctx: &mut Ctx, twin: Option<(f64, CgBurn)>) -> Result<f64, Problem> {
    let Some((share, out)) = twin else {
        return Ok(f64::INFINITY);
    };
    ctx.measure("twin", &out);
    ctx.measure("twin_cpu_share", (share * 1000.0).round() / 1000.0);
    if share <= 0.15 {
        broken!("the unquota'd twin got only {share:.3} of a CPU: the host is too busy to see a 10% cap");
    }
    Ok(share)
}

/// The body of `cg.cpu-quota`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn cpu_quota(ctx: &mut Ctx, v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Cpu, "cpu")?;
    // The reference: an unquota'd twin that burns at the same moment, so
    // both see the same load however busy the host is (a shared 2-core
    // machine, concurrent runs). The weight gives the suite's groups the
    // CPU over other work; the quota caps a child whatever its weight. The
    // control's child is itself unquota'd, so it runs without a twin (one
    // CPU for the window less).
    let twin = match v {
        Variant::Isolated => Some(new_group(ctx, Controller::Cpu, "twin")?),
        Variant::Control => None,
    };
    g.hier.parent_group().set_cpu_weight_factor(CPU_WEIGHT)?;
    g.set_cpu_weight_factor(CPU_WEIGHT)?;
    if let Some(t) = &twin {
        t.set_cpu_weight_factor(CPU_WEIGHT)?;
    }
    let quota = v.isolated().then_some(QUOTA_US);
    g.set_cpu_quota(quota, PERIOD_US)?;
    let read = g.cpu_quota()?;
    let before = g.cpu_stat()?;
    let a = start_burn(ctx, &g.procs_file())?;
    let b = twin
        .as_ref()
        .map(|t| start_burn(ctx, &t.procs_file()))
        .transpose()?;
    let (share, out) = burn_share(a)?;
    let twin_run = b.map(burn_share).transpose()?;
    let after = g.cpu_stat()?;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    ctx.observe(
        "quota_read_back",
        json!({ "quota_us": read.0, "period_us": read.1 }),
    );
    ctx.observe("child", &out);
    ctx.measure("cpu_share", round(share));
    ctx.measure("cpu_stat_before", &before);
    ctx.measure("cpu_stat_after", &after);
    let twin_share = twin_reference(ctx, twin_run)?;
    check!(
        after.nr_throttled > before.nr_throttled,
        "nr_throttled did not rise ({} -> {})",
        before.nr_throttled,
        after.nr_throttled
    );
    let (within_quota, below_twin) = (share <= 0.15, share < twin_share);
    check!(
        within_quota,
        "the child got {share:.3} of a CPU (quota 10%)"
    );
    check!(
        below_twin,
        "the child got {share:.3} of a CPU, its unquota'd twin under the same load {twin_share:.3}"
    );
    Ok(())
}
