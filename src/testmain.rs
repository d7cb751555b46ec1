//! The `cargo test` front end: one libtest-mimic trial per experiment.
//!
//! libtest has no runtime skip, so the host is probed before the trials are
//! listed and an experiment with an unmet need is flagged *ignored* up front:
//! `cargo test` and `cargo nextest run` both count it as ignored, never as
//! passed. The reason goes to stderr and into the section's JSON report
//! (nextest drops ignore reasons).

use crate::experiment::{Experiment, Section};
use crate::report::{ExperimentResult, Report, Status};
use crate::session::{Ended, Session};
use crate::{cleanup, experiments, helper, host::HostFacts, runner};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `fn main` of a `tests/<section>.rs` file.
pub fn main(sections: &[Section], helper_exe: &str, report_dir: &str) -> ! {
    let args = Arguments::from_args();
    helper::set_helper_path(helper_exe);
    let session = (!args.list).then(|| Session::start(None));
    let results: Results = Arc::default();
    let trials = sections
        .iter()
        .flat_map(|s| experiments::of_section(*s))
        .map(|exp| trial(exp, &args, &results))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(session) = session {
        let ended = session.finish();
        let ran = std::mem::take(&mut *results.lock().unwrap());
        if !ran.is_empty() {
            write_report(sections, report_dir, &ended, ran);
        }
    }
    if let Some(sig) = cleanup::interrupted() {
        std::process::exit(128 + sig);
    }
    conclusion.exit()
}

/// The results of the trials this process ran, for the section's report.
type Results = Arc<Mutex<Vec<ExperimentResult>>>;

/// One experiment as a libtest trial: ignored up front when the host does
/// not meet its needs (its ignored result goes into the report at once, as
/// libtest will not run it), else run and judged when libtest calls it.
fn trial(exp: &'static Experiment, args: &Arguments, results: &Results) -> Trial {
    let unmet = exp.unmet(HostFacts::get());
    if let (Some(why), false) = (&unmet, args.list) {
        if args.filter.as_deref().is_none_or(|f| exp.id.contains(f)) {
            eprintln!("isocheck: {} ignored: {why}", exp.id);
            results
                .lock()
                .unwrap()
                .push(runner::ignored(exp, why.clone()));
        }
    }
    let sink = results.clone();
    Trial::ignorable_test(exp.id, move || {
        let r = runner::run_one(exp);
        let verdict = verdict(&r);
        // After a Ctrl-C the cleanup broke whatever still ran: not a result.
        if cleanup::interrupted().is_none() {
            sink.lock().unwrap().push(r);
        }
        verdict
    })
    .with_ignored_flag(unmet.is_some())
}

/// libtest's verdict on a result: only passed and ignored are not failures.
fn verdict(r: &ExperimentResult) -> Result<Completion, Failed> {
    match r.status {
        Status::Passed => Ok(Completion::Completed),
        Status::Ignored => Ok(Completion::ignored_with(
            r.reason.clone().unwrap_or_default(),
        )),
        Status::Failed | Status::Broken => Err(Failed::from(format!(
            "{}: {}\nobservations: {}",
            r.status.word(),
            r.reason.clone().unwrap_or_default(),
            serde_json::to_string(&r.observations).unwrap_or_default()
        ))),
    }
}

/// Writes (merges) the sections' report `isocheck-<a+b>.json` in `report_dir`.
fn write_report(sections: &[Section], report_dir: &str, ended: &Ended, ran: Vec<ExperimentResult>) {
    let name = sections
        .iter()
        .map(|s| s.key())
        .collect::<Vec<_>>()
        .join("+");
    let path = PathBuf::from(report_dir).join(format!("isocheck-{name}.json"));
    match merge_report(&path, ended, ran) {
        Ok(()) => eprintln!("isocheck: report {}", path.display()),
        Err(e) => eprintln!("isocheck: could not write {}: {e}", path.display()),
    }
}

/// Merges into an existing report so that nextest, which runs one test per
/// process, still ends with one report per section.
fn merge_report(path: &Path, ended: &Ended, ran: Vec<ExperimentResult>) -> std::io::Result<()> {
    crate::owner::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let lock = std::fs::File::create(path.with_extension("lock"))?;
    crate::owner::hand_over(&path.with_extension("lock"));
    cleanup::flock(&lock, libc::LOCK_EX);
    // No wall time: under nextest a section's report gathers many processes.
    let mut report = Report::load(path).unwrap_or_else(|_| Report {
        wall_ms: 0,
        interrupted: false,
        ..ended.report(Vec::new())
    });
    report.interrupted |= ended.interrupted.is_some();
    for r in ran {
        report.experiments.retain(|e| e.id != r.id);
        report.experiments.push(r);
    }
    let order: Vec<&str> = experiments::all().iter().map(|e| e.id).collect();
    report
        .experiments
        .sort_by_key(|e| order.iter().position(|i| *i == e.id).unwrap_or(usize::MAX));
    crate::owner::write(path, serde_json::to_string_pretty(&report)?)
}
