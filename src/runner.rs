//! Runs experiments: needs, the isolated run, the control run, the leak
//! check, and a pool of workers for `--jobs`.

use crate::cleanup::{self, Tag};
use crate::experiment::{Body, Ctx, Experiment, Fixture, Outcome, Problem, Variant};
use crate::host::HostFacts;
use crate::report::{ControlOutcome, ExperimentResult, Status};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn exclusive_lock(name: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.entry(name.to_string()).or_default().clone()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The time limit of an experiment run when neither `--timeout` nor
/// `ISOCHECK_TIMEOUT` says otherwise.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(30);
/// Experiments that legitimately take longer than the default (none today
/// come near it: the slowest, docker.container-network, takes ~10 s on a busy
/// 2-core machine), by id prefix. A table here instead
/// of a field of `Experiment`, so that a new limit touches one line, not
/// every experiment literal.
const LIMITS: &[(&str, Duration)] = &[
    ("docker.", Duration::from_secs(60)),
    ("esc.docker-", Duration::from_secs(60)),
];
/// Set by `isocheck run --timeout` (and `ISOCHECK_TIMEOUT`): seconds, 0 = unset.
static LIMIT_OVERRIDE: AtomicU64 = AtomicU64::new(0);
/// After the limit, how long the body may take to notice its processes died
/// and run its own teardown before the runner sweeps its tag itself.
const GRACE: Duration = Duration::from_millis(1500);

/// Overrides every experiment's limit (`--timeout SECS`, `ISOCHECK_TIMEOUT`).
pub fn set_time_limit(limit: Option<Duration>) {
    LIMIT_OVERRIDE.store(limit.map_or(0, |d| d.as_millis() as u64), Ordering::SeqCst);
}

/// `ISOCHECK_TIMEOUT` (seconds) when set and valid.
pub fn time_limit_from_env() -> Option<Duration> {
    let v = std::env::var("ISOCHECK_TIMEOUT").ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
}

/// How long one run (isolated or control) of `exp` may take, teardown included.
pub fn time_limit(exp: &Experiment) -> Duration {
    match LIMIT_OVERRIDE.load(Ordering::SeqCst) {
        0 => LIMITS
            .iter()
            .find(|(p, _)| exp.id.starts_with(p))
            .map_or(DEFAULT_LIMIT, |(_, d)| *d),
        ms => Duration::from_millis(ms),
    }
}

/// (outcome, facts, measurements) of one run of a body.
type Pass = (
    Result<(), Problem>,
    BTreeMap<String, Value>,
    BTreeMap<String, Value>,
);

/// The body, its teardown and its leak check, on a thread of their own so
/// that the runner can stop waiting: a step that never returns must not hang
/// the run. The leak check runs on this thread too, before it exits: the
/// body's processes carry PDEATHSIG, which fires when the thread that started
/// them ends, and would otherwise hide a leaked process from the check.
fn body_and_teardown(
    (body, fixture): (Body, Option<&'static Fixture>),
    tag: Tag,
    variant: Variant,
) -> mpsc::Receiver<Pass> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(tag.to_string())
        .spawn(move || {
            let mut ctx = Ctx::new(tag.clone(), variant);
            let r = in_fixture(fixture, body, &mut ctx, variant);
            // A pass must carry observations; guards' bookkeeping
            // (`observe_guard`) does not count. A control that passes is
            // failed either way.
            let unasserted = variant.isolated() && r.is_ok() && !ctx.asserted_something();
            ctx.run_teardown();
            let (obs, meas) = (ctx.take_observations(), ctx.take_measurements());
            let _ = tx.send((judge_leftovers(&tag, r, unasserted), obs, meas));
        });
    if let Err(e) = spawned {
        let (tx, rx2) = mpsc::channel();
        let why = format!("starting its thread: {e}");
        let _ = tx.send((Err(Problem::Broken(why)), BTreeMap::new(), BTreeMap::new()));
        return rx2;
    }
    rx
}

/// The body inside its section's fixture (`Experiment::fixture`): the
/// fixture's teardown sees every outcome of the body, a panic included.
fn in_fixture(fixture: Option<&Fixture>, body: Body, ctx: &mut Ctx, v: Variant) -> Outcome {
    if let Some(f) = fixture {
        caught(|| (f.setup)(ctx))?;
    }
    let r = caught(|| body(ctx, v));
    match fixture {
        Some(f) => caught(|| (f.teardown)(ctx, r)),
        None => r,
    }
}

/// A panic of a body (or a fixture step) is that run broken.
fn caught(f: impl FnOnce() -> Outcome) -> Outcome {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Problem::Broken(format!("panicked: {}", panic_message(p)))))
}

/// The leak check after a finished run: a leak outranks everything (see
/// `with_leak`); a pass that recorded nothing is broken.
fn judge_leftovers(tag: &Tag, r: Result<(), Problem>, unasserted: bool) -> Result<(), Problem> {
    match remove_leftovers(tag) {
        Some(leak) => with_leak(r, format!("left behind after teardown: {leak}")),
        None if unasserted => Err(Problem::Broken(
            "asserted nothing: the run passed without recording an observation".into(),
        )),
        None => r,
    }
}

/// Removes what the tag still holds; describes it, or None when nothing was left.
fn remove_leftovers(tag: &Tag) -> Option<String> {
    let leaks = cleanup::leaks(tag);
    if leaks.is_empty() {
        return None;
    }
    let list: Vec<String> = leaks.iter().map(|l| l.to_string()).collect();
    let errors = cleanup::remove(leaks);
    let mut msg = list.join(", ");
    if !errors.is_empty() {
        msg.push_str(&format!(" (and could not remove: {})", errors.join("; ")));
    }
    Some(msg)
}

/// At the limit: kill every process of the tag (which ends the body's
/// blocking waits and reads), give the body a moment to run its own
/// teardown, then remove by tag what it could not, and report it broken.
/// Leftovers of a body that never got to its teardown are expected: they are
/// removed and named only when the removal itself fails.
fn time_out(tag: &Tag, limit: Duration, rx: &mpsc::Receiver<Pass>) -> Pass {
    let deadline = Instant::now() + GRACE;
    let (mut obs, mut meas) = (BTreeMap::new(), BTreeMap::new());
    while Instant::now() < deadline {
        cleanup::kill_processes(tag);
        if let Ok((_, o, m)) = rx.recv_timeout(Duration::from_millis(100)) {
            (obs, meas) = (o, m);
            break;
        }
    }
    let mut why = format!("timed out after {} s", limit.as_secs_f64());
    if let Some(left) = remove_leftovers(tag).filter(|l| l.contains("could not remove")) {
        why.push_str(&format!("; {left}"));
    }
    (Err(Problem::Broken(why)), obs, meas)
}

/// One pass of the body, with its teardown and leak check, within the
/// experiment's time limit.
fn run_variant(exp: &Experiment, variant: Variant) -> Pass {
    let tag = cleanup::new_tag();
    let limit = time_limit(exp);
    let rx = body_and_teardown((exp.body, exp.fixture), tag.clone(), variant);
    match rx.recv_timeout(limit) {
        Ok(pass) => pass,
        Err(_) => time_out(&tag, limit, &rx),
    }
}

/// A leak is its own outcome: it outranks a pass and an assertion failure
/// (so a control that leaked never counts as "failed as expected"), and is
/// appended to a broken step rather than hiding it.
fn with_leak(r: Result<(), Problem>, leak: String) -> Result<(), Problem> {
    match r {
        Ok(()) | Err(Problem::Unmet(_)) => Err(Problem::HostState(leak)),
        Err(Problem::Fail(why)) => Err(Problem::HostState(format!(
            "{leak} (the run also failed its assertion: {why})"
        ))),
        Err(Problem::HostState(m)) => Err(Problem::HostState(format!("{m}; {leak}"))),
        Err(Problem::Broken(m)) => Err(Problem::Broken(format!("{m}; {leak}"))),
    }
}

/// The result of an experiment whose needs the host does not meet: both
/// front ends report it without running it.
pub fn ignored(exp: &Experiment, why: String) -> ExperimentResult {
    ExperimentResult {
        id: exp.id.to_string(),
        section: exp.section.key().to_string(),
        status: Status::Ignored,
        reason: Some(why),
        control: None,
        observations: BTreeMap::new(),
        measurements: BTreeMap::new(),
        duration_ms: 0,
        anchors: names(exp.anchors.as_slice()),
        cves: names(exp.cves.as_slice()),
    }
}

fn names(refs: &[&str]) -> Vec<String> {
    refs.iter().map(|s| s.to_string()).collect()
}

/// Runs one experiment (its isolated run and, at the same time, its
/// control) and judges it.
pub fn run_one(exp: &Experiment) -> ExperimentResult {
    if let Some(why) = exp.unmet(HostFacts::get()) {
        return ignored(exp, why);
    }
    // An engine whose runtime cannot run here fails every container the
    // same way: one probe, and its words as every Docker row's reason.
    if exp.needs.contains(&crate::needs::Need::Docker) {
        if let Some(why) = crate::enginestack::runtime_unmet() {
            return ignored(exp, why);
        }
    }
    let start = Instant::now();
    let mut res = ExperimentResult {
        id: exp.id.to_string(),
        section: exp.section.key().to_string(),
        status: Status::Passed,
        reason: None,
        control: None,
        observations: BTreeMap::new(),
        measurements: BTreeMap::new(),
        duration_ms: 0,
        anchors: names(exp.anchors.as_slice()),
        cves: names(exp.cves.as_slice()),
    };
    let lock = exp.exclusive.map(exclusive_lock);
    let _guard = lock
        .as_ref()
        .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));

    // The control run shares nothing with the isolated one (its own tag,
    // names and teardown), so both run at once: an experiment with a
    // control costs the longer of the two, not their sum.
    let ((r, obs, meas), control) = std::thread::scope(|s| {
        let control = exp
            .control
            .map(|_| s.spawn(|| run_variant(exp, Variant::Control)));
        let isolated = run_variant(exp, Variant::Isolated);
        let control = control.map(|h| {
            h.join().unwrap_or_else(|_| {
                (
                    Err(Problem::Broken("control run panicked".into())),
                    BTreeMap::new(),
                    BTreeMap::new(),
                )
            })
        });
        (isolated, control)
    });
    res.observations = obs;
    res.measurements = meas;
    apply(&mut res, r);
    if let (Status::Passed, Some((r, obs, _))) = (res.status, control) {
        res.observations
            .insert("control".into(), Value::Object(obs.into_iter().collect()));
        judge_control(&mut res, exp, r);
    }
    res.duration_ms = start.elapsed().as_millis() as u64;
    res
}

/// Where `isocheck run` keeps the last run's durations (a scheduling hint
/// only: a missing or stale file changes the order, never a result).
pub fn durations_file() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("isocheck").join("durations.json"))
}

/// Durations of earlier runs by id (empty when none): the runner starts the slowest first.
pub fn load_durations() -> HashMap<String, u64> {
    durations_file()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Records this run's durations (ignored rows left out, so they keep their old value) for the next run's order.
pub fn save_durations(results: &[ExperimentResult]) {
    let mut d = load_durations();
    for r in results.iter().filter(|r| r.status != Status::Ignored) {
        d.insert(r.id.clone(), r.duration_ms);
    }
    if let Some(p) = durations_file() {
        // Under sudo this is the user's ~/.cache: it must stay theirs.
        let _ = p.parent().map(crate::owner::create_dir_all);
        let _ = serde_json::to_string(&d).map(|t| crate::owner::write(&p, t));
    }
}

/// The control decides on its isolation assertion alone: only
/// `Problem::Fail` is "failed as expected"; a broken step, a leak or a host
/// change in the control run makes the whole experiment broken.
fn judge_control(res: &mut ExperimentResult, exp: &Experiment, r: Result<(), Problem>) {
    match r {
        Err(Problem::Fail(why)) => {
            res.control = Some(ControlOutcome::FailedAsExpected);
            res.observations
                .insert("control_failure".into(), Value::String(why));
        }
        Ok(()) => {
            res.control = Some(ControlOutcome::PassedUnexpectedly);
            res.status = Status::Failed;
            res.reason = Some(format!(
                "the control ({}) passed too: the assertion proves nothing",
                exp.control.unwrap_or("without the isolation")
            ));
        }
        Err(other) => {
            res.status = match other {
                Problem::Unmet(_) => Status::Ignored,
                _ => Status::Broken,
            };
            res.reason = Some(format!("control run: {other}"));
        }
    }
}

fn apply(res: &mut ExperimentResult, r: Result<(), Problem>) {
    match r {
        Ok(()) => {}
        Err(Problem::Fail(m)) => {
            res.status = Status::Failed;
            res.reason = Some(m);
        }
        // The isolated run promised to leave the host as it found it.
        Err(Problem::HostState(m)) => {
            res.status = Status::Failed;
            res.reason = Some(m);
        }
        Err(Problem::Broken(m)) => {
            res.status = Status::Broken;
            res.reason = Some(m);
        }
        Err(Problem::Unmet(m)) => {
            res.status = Status::Ignored;
            res.reason = Some(m);
        }
    }
}

/// The order the workers take experiments in: longest first (`durations`,
/// ms, from an earlier run), each section's experiments together, in the
/// place of its longest. Together because a section's fixture lives while
/// any of its experiments is in flight: net's host-network snapshots (six
/// commands each) are taken when the first starts and compared when the
/// last ends, so net rows interleaved with others took ten a run, not two.
pub fn schedule(exps: &[&Experiment], durations: &HashMap<String, u64>) -> Vec<usize> {
    let keys: Vec<(&str, u64)> = exps
        .iter()
        .map(|e| (e.section.key(), durations.get(e.id).copied().unwrap_or(0)))
        .collect();
    order_by_section(&keys)
}

/// `schedule` over (section, cost) pairs: sections by their costliest
/// member, then by first appearance (so without durations the order is the
/// registry's), members by cost; ties keep their order.
pub fn order_by_section(keys: &[(&str, u64)]) -> Vec<usize> {
    let mut section: HashMap<&str, (u64, usize)> = HashMap::new();
    for (i, &(s, cost)) in keys.iter().enumerate() {
        let e = section.entry(s).or_insert((0, i));
        e.0 = e.0.max(cost);
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| {
        let (longest, first) = section[keys[i].0];
        (
            std::cmp::Reverse(longest),
            first,
            std::cmp::Reverse(keys[i].1),
        )
    });
    order
}

/// Experiments that mostly wait on an outside daemon (the Docker engine)
/// get a pool of their own, so they overlap with the CPU-bound ones instead
/// of queueing behind them.
const ENGINE_JOBS: usize = 4;

/// Runs `exps` on `jobs` workers (plus a small pool for engine-bound ones);
/// `progress` sees each result as it lands. Results come back in the order
/// of `exps`.
/// `durations` (ms, from an earlier run) puts the longest experiments first,
/// so the run does not end waiting on one long experiment started last.
pub fn run_all(
    exps: &[&'static Experiment],
    jobs: usize,
    durations: &HashMap<String, u64>,
    progress: &(dyn Fn(&ExperimentResult) + Sync),
) -> Vec<ExperimentResult> {
    let slots: Mutex<Vec<Option<ExperimentResult>>> = Mutex::new(vec![None; exps.len()]);
    let order = schedule(exps, durations);
    let (engine, local): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|i| exps[*i].needs.contains(&crate::needs::Need::Docker));
    std::thread::scope(|s| {
        for (queue, workers) in [(&engine, ENGINE_JOBS), (&local, jobs.max(1))] {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..workers.min(queue.len()) {
                let (next, slots) = (next.clone(), &slots);
                s.spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = queue.get(k) else { break };
                    if cleanup::interrupted().is_some() {
                        break;
                    }
                    let r = run_one(exps[i]);
                    // After a Ctrl-C the cleanup broke whatever still ran:
                    // only experiments that finished before it are results.
                    if cleanup::interrupted().is_some() {
                        break;
                    }
                    progress(&r);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                });
            }
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::order_by_section;
    use rstest::rstest;

    #[rstest]
    #[case::no_durations_keep_the_registry_order(&[("a", 0), ("a", 0), ("b", 0)], &[0, 1, 2])]
    #[case::longest_section_first_members_by_cost(
        &[("pid", 10), ("pid", 30), ("net", 500), ("net", 20), ("cg", 300), ("cg", 5)],
        &[2, 3, 4, 5, 1, 0]
    )]
    #[case::a_section_stays_together_around_a_longer_row(
        &[("net", 100), ("cg", 300), ("net", 200)],
        &[1, 2, 0]
    )]
    fn sections_are_scheduled_together_longest_first(
        #[case] keys: &[(&str, u64)],
        #[case] want: &[usize],
    ) {
        assert_eq!(order_by_section(keys), want);
    }
}
