//! One run of experiments, as both front ends (`isocheck run` and the
//! `cargo test` trials) do it: the setup before the first experiment and the
//! cleanup and report after the last, written once so that the two cannot
//! drift apart.

use crate::host::HostFacts;
use crate::report::{ExperimentResult, HostReport, Report, SCHEMA};
use crate::{cleanup, docker, loopdev, runner, scope};
use std::time::{Duration, Instant};

/// A run in progress: started by [`Session::start`], ended by
/// [`Session::finish`].
pub struct Session {
    start: Instant,
}

/// What the end of a run knows: how long it took and whether a signal
/// stopped it.
pub struct Ended {
    /// From the end of the setup to the start of the end-of-run cleanup.
    pub wall: Duration,
    /// The signal that interrupted the run, if one did (exit 128 + it).
    pub interrupted: Option<i32>,
}

impl Session {
    /// The run's setup, in the order that keeps it safe: the helper's path
    /// is settled while the process is still single-threaded (a copy written
    /// while another thread forks makes execs fail with ETXTBSY); signal
    /// cleanup is installed before the host probe, which can take a second
    /// on a busy machine, so that a Ctrl-C from then on is an interrupted
    /// run; leftovers of killed runs go before this run makes its own.
    /// `limit` (`--timeout`) overrides `ISOCHECK_TIMEOUT`.
    pub fn start(limit: Option<Duration>) -> Session {
        runner::set_time_limit(limit.or_else(runner::time_limit_from_env));
        scope::helper_path();
        cleanup::install_signal_cleanup();
        docker::register_leftovers();
        loopdev::register_leftovers();
        let host = HostFacts::get();
        // The report's tool versions, asked while the experiments run.
        std::thread::spawn(move || host.tool_versions());
        for l in cleanup::sweep_dead_runs() {
            eprintln!("isocheck: removed a leftover of an earlier, killed run: {l}");
        }
        Session {
            start: Instant::now(),
        }
    }

    /// The end of the run: removes whatever of the run is still on the host
    /// (naming what could not be removed) and drops the run's lock.
    pub fn finish(self) -> Ended {
        let interrupted = cleanup::interrupted();
        let wall = self.start.elapsed();
        for e in cleanup::sweep_this_run() {
            eprintln!("isocheck: end-of-run cleanup: {e}");
        }
        cleanup::release_run();
        Ended { wall, interrupted }
    }
}

impl Ended {
    /// The run's report over `results` (after a signal, only the
    /// experiments that finished before it).
    pub fn report(&self, results: Vec<ExperimentResult>) -> Report {
        Report {
            schema: SCHEMA,
            host: HostReport::from_host(HostFacts::get()),
            run_id: cleanup::run_id().to_string(),
            wall_ms: self.wall.as_millis() as u64,
            interrupted: self.interrupted.is_some(),
            experiments: results,
        }
    }
}
