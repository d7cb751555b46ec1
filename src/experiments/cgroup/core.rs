//! The groups' own verbs rather than a controller's limits: v2's
//! `cgroup.kill`, and the freezer in both forms (v1 `freezer.state`, v2
//! `cgroup.freeze`), after kselftest's test_kill and test_freezer.

use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The bound for what the kernel does asynchronously (a task exiting, a
/// group reaching frozen); only a broken step waits it out. The qemu guest
/// runs ~30x slower.
fn bound(host_secs: u64) -> Duration {
    let factor = if crate::process::in_qemu_guest() {
        6
    } else {
        1
    };
    Duration::from_secs(host_secs * factor)
}

fn v2_core() -> Result<Hierarchy, Problem> {
    Hierarchy::v2_core().ok_or_else(|| Problem::Unmet("no cgroup2 hierarchy mounted".into()))
}

fn events(g: &Group) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(cgroups::parse_keyed(&g.read("cgroup.events")?))
}

fn populated(g: &Group) -> anyhow::Result<u64> {
    events(g)?
        .get("populated")
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{}: no populated line", g.path.display()))
}

/// The signal a child of ours died of, once it is reapable (bounded).
fn death_signal(s: &mut Spawned, limit: Duration) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = None;
    wait_until(limit, || {
        status = s.child.try_wait().ok().flatten();
        status.is_some()
    });
    status.map(|st| st.signal().unwrap_or(0))
}

fn start_in(ctx: &Ctx, op: &str, g: &Group) -> anyhow::Result<(Spawned, i32)> {
    let procs = g.procs_file().to_string_lossy().into_owned();
    let mut s = Spawned::start(ctx.helper().args([op, "--procs", &procs]))?;
    let pid = parked_pid(&mut s)?;
    Ok((s, pid))
}

// ---------------------------------------------------------------------------
// cg.kill

/// The body of `cg.kill`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn kill(ctx: &mut Ctx, v: Variant) -> Outcome {
    let h = v2_core()?;
    let g = suite_group(ctx, &h, "kill")?;
    let sub = g.subgroup("sub", &[])?;
    let sib = suite_group(ctx, &h, "sibling")?;
    let (mut parked, _) = start_in(ctx, "cg-park", &g)?;
    let (mut forker, _) = start_in(ctx, "cg-forker", &sub)?;
    let (mut other, other_pid) = start_in(ctx, "cg-park", &sib)?;
    ctx.measure(
        "tasks_below_group_before",
        g.procs()?.len() + sub.procs()?.len(),
    );
    // The control kills the sibling instead: the group's tasks must then live.
    let target = if v.isolated() { &g } else { &sib };
    target.write("cgroup.kill", "1")?;
    if !wait_until(bound(10), || populated(target).ok() == Some(0)) {
        broken!(
            "{} still populated 10 s after cgroup.kill",
            target.path.display()
        );
    }
    let (pg, ps) = (populated(&g)?, populated(&sub)?);
    ctx.observe("group_populated", pg);
    ctx.observe("subgroup_populated", ps);
    check!(
        pg == 0 && ps == 0,
        "the group (populated {pg}) or its child group (populated {ps}) kept tasks after cgroup.kill"
    );
    let killed = (
        death_signal(&mut parked, bound(5)),
        death_signal(&mut forker, bound(5)),
    );
    ctx.observe("member_signals", [killed.0, killed.1]);
    check_eq!(
        killed,
        (Some(9), Some(9)),
        "signals the group's tasks died of"
    );
    let sibling_alive = other.child.try_wait()?.is_none() && sib.procs()?.contains(&other_pid);
    ctx.observe("sibling_alive", sibling_alive);
    check!(
        sibling_alive,
        "the sibling group's task died with the group"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.freezer

/// How long each counter sample spans: enough for a runnable task on a
/// busy 2-core host to be scheduled many times.
const WINDOW: Duration = Duration::from_millis(150);

/// The freezer's two interfaces.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// A v1 `freezer` hierarchy: `freezer.state` FROZEN / THAWED.
    V1,
    /// cgroup2's core `cgroup.freeze`, confirmed by `cgroup.events frozen`.
    V2,
}

impl Form {
    fn key(self) -> &'static str {
        match self {
            Form::V1 => "v1",
            Form::V2 => "v2",
        }
    }

    fn hierarchy(self) -> Option<Hierarchy> {
        match self {
            Form::V1 => Hierarchy::of(Controller::Freezer).filter(|h| h.version == Version::V1),
            Form::V2 => Hierarchy::v2_core(),
        }
    }

    fn set(self, g: &Group, frozen: bool) -> anyhow::Result<()> {
        let (file, value) = match (self, frozen) {
            (Form::V1, true) => ("freezer.state", "FROZEN"),
            (Form::V1, false) => ("freezer.state", "THAWED"),
            (Form::V2, true) => ("cgroup.freeze", "1"),
            (Form::V2, false) => ("cgroup.freeze", "0"),
        };
        g.write(file, value)
            .map_err(|e| anyhow::anyhow!("writing {value} to {file}: {e}"))
    }

    fn is_frozen(self, g: &Group) -> bool {
        match self {
            Form::V1 => g.read("freezer.state").is_ok_and(|s| s.trim() == "FROZEN"),
            Form::V2 => events(g).is_ok_and(|e| e.get("frozen") == Some(&1)),
        }
    }

    /// Sets the state and waits until the kernel reports it reached.
    fn reach(self, g: &Group, frozen: bool) -> Outcome {
        self.set(g, frozen)?;
        if !wait_until(bound(10), || self.is_frozen(g) == frozen) {
            broken!(
                "{} did not reach frozen={frozen} within 10 s",
                g.path.display()
            );
        }
        Ok(())
    }
}

/// Thaws the group when dropped. Declared after the group's children, so
/// an early return thaws before their `Spawned` drops reap them: a frozen
/// v1 task keeps SIGKILL pending, and the reap would wait for ever.
struct ThawOnDrop<'a>(Form, &'a Group);

impl Drop for ThawOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.set(self.1, false);
    }
}

/// An 8-byte counter file a `cg-count` child increments through a shared mapping.
fn counter_file(dir: &Path, role: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(format!("counter-{role}"));
    std::fs::write(&p, [0u8; 8])?;
    Ok(p)
}

fn count(p: &Path) -> anyhow::Result<u64> {
    let b = std::fs::read(p)?;
    let a: [u8; 8] = b
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: short counter", p.display()))?;
    Ok(u64::from_ne_bytes(a))
}

/// How much each counter advanced over at least one `WINDOW` and until
/// `counters[witness]` (a task that must run) moved: a busy host (the TCG
/// guest, seen: 150 ms without a tick for the unfrozen sibling) then
/// stretches the span instead of making the others' stillness meaningless.
/// Bounded: a witness that never moves is the caller's to judge.
fn advance(counters: &[&Path], witness: usize) -> anyhow::Result<Vec<u64>> {
    let before: Vec<u64> = counters
        .iter()
        .map(|p| count(p))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(WINDOW);
    wait_until(bound(5), || {
        count(counters[witness]).is_ok_and(|n| n != before[witness])
    });
    let after: Vec<u64> = counters
        .iter()
        .map(|p| count(p))
        .collect::<Result<_, _>>()?;
    Ok(after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect())
}

fn start_counter(ctx: &Ctx, g: &Group, counter: &Path) -> anyhow::Result<Spawned> {
    let procs = g.procs_file().to_string_lossy().into_owned();
    let c = counter.to_string_lossy().into_owned();
    Spawned::start(
        ctx.helper()
            .args(["cg-count", "--procs", &procs, "--counter", &c]),
    )
}

/// The body of `cg.freezer`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn freezer(ctx: &mut Ctx, v: Variant) -> Outcome {
    let forms: Vec<Form> = [Form::V1, Form::V2]
        .into_iter()
        .filter(|f| f.hierarchy().is_some())
        .collect();
    if forms.is_empty() {
        return Err(Problem::Unmet(
            "no v1 freezer hierarchy and no cgroup2 mount".into(),
        ));
    }
    let mut ran = 0;
    for f in forms {
        ran += usize::from(freeze_form(ctx, v, f)?);
    }
    if ran == 0 {
        return Err(Problem::Unmet(
            "no freezer here: no v1 freezer hierarchy, and cgroup2 groups have no cgroup.freeze (kernel < 5.2)".into(),
        ));
    }
    Ok(())
}

/// Setup: the joining child shows in the group's procs (bounded).
fn wait_joined(g: &Group, jpid: i32) -> Outcome {
    if !wait_until(bound(5), || g.procs().is_ok_and(|p| p.contains(&jpid))) {
        broken!(
            "the joining child {jpid} never showed in {}",
            g.path.display()
        );
    }
    Ok(())
}

/// One form's run; false when this kernel's groups lack its file.
fn freeze_form(ctx: &mut Ctx, v: Variant, form: Form) -> Result<bool, Problem> {
    let Some(h) = form.hierarchy() else {
        return Ok(false);
    };
    let k = form.key();
    let g = suite_group(ctx, &h, &format!("frz{k}"))?;
    if form == Form::V2 && !g.has("cgroup.freeze") {
        ctx.observe(&format!("{k}.cgroup_freeze"), "absent");
        return Ok(false);
    }
    let u = suite_group(ctx, &h, &format!("unfrz{k}"))?;
    let dir = ctx.scratch()?;
    let c: Vec<PathBuf> = ["a", "u", "j"]
        .iter()
        .map(|r| counter_file(&dir, &format!("{r}{k}")))
        .collect::<Result<_, _>>()?;
    let mut a = start_counter(ctx, &g, &c[0])?;
    let mut b = start_counter(ctx, &u, &c[1])?;
    parked_pid(&mut a)?;
    parked_pid(&mut b)?;
    let _thaw = ThawOnDrop(form, &g);
    if v.isolated() {
        form.reach(&g, true)?;
    }
    // A child that joins the group now (the frozen one: it stops at once).
    let mut j = start_counter(ctx, &g, &c[2])?;
    let _thaw_j = ThawOnDrop(form, &g);
    wait_joined(&g, j.pid())?;
    let adv = advance(&[&c[0], &c[1], &c[2]], 1)?;
    ctx.measure(&format!("{k}.advance_frozen_sibling_joined"), &adv);
    ctx.observe(&format!("{k}.frozen_counter_moved"), adv[0] != 0);
    let joined = count(&c[2])?;
    ctx.observe(&format!("{k}.joined_child_ran"), joined != 0);
    check!(
        adv[0] == 0,
        "{k}: the counter in the frozen group advanced by {}",
        adv[0]
    );
    if adv[1] == 0 {
        broken!(
            "the unfrozen sibling's counter did not move in {:?}: the host is too busy to tell",
            bound(5)
        );
    }
    check!(
        count(&c[2])? == 0,
        "{k}: a child that joined the frozen group ran"
    );
    kill_frozen(ctx, form, &mut j)?;
    form.reach(&g, false)?;
    let adv = advance(&[&c[0]], 0)?;
    ctx.measure(&format!("{k}.advance_after_thaw"), adv[0]);
    ctx.observe(&format!("{k}.thawed_counter_moved"), adv[0] != 0);
    check!(adv[0] != 0, "{k}: the counter did not resume after thawing");
    Ok(true)
}

/// SIGKILL to a frozen task: v2 kills it (asserted, with the bound for a
/// task exiting), v1 keeps the kill pending until the group is thawed
/// (recorded only: a short grace, which v1 always waits out).
fn kill_frozen(ctx: &mut Ctx, form: Form, j: &mut Spawned) -> Outcome {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(j.pid()),
        nix::sys::signal::SIGKILL,
    );
    let grace = match form {
        Form::V2 => bound(2),
        Form::V1 => bound(1) / 10,
    };
    let frozen_kill = death_signal(j, grace);
    let fate = match frozen_kill {
        Some(_) => "killed while frozen",
        None => "pending until thawed",
    };
    ctx.observe(&format!("{}.sigkill_to_frozen_task", form.key()), fate);
    if form == Form::V2 {
        check_eq!(frozen_kill, Some(9), "v2: signal a frozen task died of");
    }
    Ok(())
}
