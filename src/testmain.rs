//! The `cargo test` front end: one libtest-mimic trial per experiment.
//!
//! libtest has no runtime skip, so the host is probed before the trials are
//! listed and an experiment with an unmet need is flagged *ignored* up front:
//! `cargo test` and `cargo nextest run` both count it as ignored, never as
//! passed. The reason goes to stderr and into the section's JSON report
//! (nextest drops ignore reasons).

use crate::experiment::Section;
use crate::report::{ExperimentResult, HostReport, Report, Status, SCHEMA};
use crate::{cleanup, experiments, helper, host::HostFacts, runner};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `fn main` of a `tests/<section>.rs` file.
pub fn main(sections: &[Section], helper_exe: &str, report_dir: &str) -> ! {
    let args = Arguments::from_args();
    helper::set_helper_path(helper_exe);
    runner::set_time_limit(runner::time_limit_from_env());
    let listing = args.list;
    if !listing {
        // Settles the helper's reachable path while single-threaded.
        helper::helper_path();
        cleanup::install_signal_cleanup();
        for l in cleanup::sweep_dead_runs() {
            eprintln!("isocheck: removed a leftover of an earlier, killed run: {l}");
        }
    }
    let host = HostFacts::get();
    let results: Arc<Mutex<Vec<ExperimentResult>>> = Arc::default();
    let mut trials = Vec::new();
    for s in sections {
        for exp in experiments::of_section(*s) {
            let unmet = exp.unmet(host);
            if let (Some(why), false) = (&unmet, listing) {
                if args.filter.as_deref().is_none_or(|f| exp.id.contains(f)) {
                    eprintln!("isocheck: {} ignored: {why}", exp.id);
                    results.lock().unwrap().push(ExperimentResult {
                        id: exp.id.into(),
                        section: exp.section.key().into(),
                        status: Status::Ignored,
                        reason: Some(why.clone()),
                        control: None,
                        observations: Default::default(),
                        measurements: Default::default(),
                        duration_ms: 0,
                    });
                }
            }
            let sink = results.clone();
            let trial = Trial::ignorable_test(exp.id, move || {
                let r = runner::run_one(exp);
                let verdict = match r.status {
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
                };
                // After a Ctrl-C the cleanup broke whatever still ran: not a result.
                if cleanup::interrupted().is_none() {
                    sink.lock().unwrap().push(r);
                }
                verdict
            })
            .with_ignored_flag(unmet.is_some());
            trials.push(trial);
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if !listing {
        let errors = cleanup::sweep_this_run();
        for e in errors {
            eprintln!("isocheck: end-of-run cleanup: {e}");
        }
        cleanup::release_run();
        let ran = std::mem::take(&mut *results.lock().unwrap());
        if !ran.is_empty() {
            let name = sections
                .iter()
                .map(|s| s.key())
                .collect::<Vec<_>>()
                .join("+");
            let path = PathBuf::from(report_dir).join(format!("isocheck-{name}.json"));
            match merge_report(&path, ran) {
                Ok(()) => eprintln!("isocheck: report {}", path.display()),
                Err(e) => eprintln!("isocheck: could not write {}: {e}", path.display()),
            }
        }
    }
    if let Some(sig) = cleanup::interrupted() {
        std::process::exit(128 + sig);
    }
    conclusion.exit()
}

/// Merges into an existing report so that nextest, which runs one test per
/// process, still ends with one report per section.
fn merge_report(path: &Path, ran: Vec<ExperimentResult>) -> std::io::Result<()> {
    crate::owner::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let lock = std::fs::File::create(path.with_extension("lock"))?;
    crate::owner::hand_over(&path.with_extension("lock"));
    cleanup::flock(&lock, libc::LOCK_EX);
    let mut report = Report::load(path).unwrap_or_else(|_| Report {
        schema: SCHEMA,
        host: HostReport::from_host(HostFacts::get()),
        run_id: cleanup::run_id().to_string(),
        wall_ms: 0,
        interrupted: false,
        experiments: Vec::new(),
    });
    report.interrupted |= cleanup::interrupted().is_some();
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
