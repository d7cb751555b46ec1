//! Runs experiments: needs, the isolated run, the control run, the leak
//! check, and a pool of workers for `--jobs`.

use crate::cleanup;
use crate::experiment::{Ctx, Experiment, Problem, Variant};
use crate::host::HostFacts;
use crate::report::{ControlOutcome, ExperimentResult, Status};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

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

/// One pass of the body, with its teardown and leak check.
/// (outcome, facts, measurements) of one variant.
type VariantRun = (
    Result<(), Problem>,
    BTreeMap<String, Value>,
    BTreeMap<String, Value>,
);

fn run_variant(exp: &Experiment, variant: Variant) -> VariantRun {
    let tag = cleanup::new_tag();
    let mut ctx = Ctx::new(tag.clone(), variant);
    let r = catch_unwind(AssertUnwindSafe(|| (exp.body)(&mut ctx, variant)))
        .unwrap_or_else(|p| Err(Problem::Broken(format!("panicked: {}", panic_message(p)))));
    ctx.run_teardown();
    let obs = ctx.take_observations();
    let meas = ctx.take_measurements();
    drop(ctx);
    let leaks = cleanup::leaks(&tag);
    if leaks.is_empty() {
        return (r, obs, meas);
    }
    let list: Vec<String> = leaks.iter().map(|l| l.to_string()).collect();
    let errors = cleanup::remove(leaks);
    let mut msg = format!("left behind after teardown: {}", list.join(", "));
    if !errors.is_empty() {
        msg.push_str(&format!(" (and could not remove: {})", errors.join("; ")));
    }
    // A leak outranks a pass, but never hides the original failure.
    match r {
        Ok(()) => (Err(Problem::Fail(msg)), obs, meas),
        Err(p) => (Err(p), obs, meas),
    }
}

pub fn run_one(exp: &Experiment) -> ExperimentResult {
    let host = HostFacts::get();
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
    };
    if let Some(reason) = exp.unmet(host) {
        res.status = Status::Ignored;
        res.reason = Some(reason);
        return res;
    }
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

pub fn load_durations() -> HashMap<String, u64> {
    durations_file()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn save_durations(results: &[ExperimentResult]) {
    let mut d = load_durations();
    for r in results.iter().filter(|r| r.status != Status::Ignored) {
        d.insert(r.id.clone(), r.duration_ms);
    }
    if let Some(p) = durations_file() {
        let _ = p.parent().map(std::fs::create_dir_all);
        let _ = serde_json::to_string(&d).map(|t| std::fs::write(p, t));
    }
}

fn apply(res: &mut ExperimentResult, r: Result<(), Problem>) {
    match r {
        Ok(()) => {}
        Err(Problem::Fail(m)) => {
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
    let mut order: Vec<usize> = (0..exps.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(durations.get(exps[*i].id).copied().unwrap_or(0)));
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
                    let r = run_one(exps[i]);
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
