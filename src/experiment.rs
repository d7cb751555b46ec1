//! What an experiment is, and the context its body runs in.
//!
//! An experiment's body runs twice when it has a negative control: once with
//! the isolation (`Variant::Isolated`) and once with the very same steps
//! without it (`Variant::Control`). The body asserts the same thing both times;
//! the runner expects the control run to fail its assertion. This makes "the
//! same steps without the isolation" literal instead of a second, hand-written
//! test that could drift.
//!
//! Errors come in four kinds, never folded together (as LTP's TPASS / TFAIL /
//! TBROK / TCONF): an assertion that did not hold (`Problem::Fail`), a step
//! outside the behaviour under test that broke (`Problem::Broken`, what `?`
//! gives), a need discovered unmet only at run time (`Problem::Unmet`), and
//! the run leaving something on the host or changing its state
//! (`Problem::HostState`, from the leak check and host guards).
//!
//! Only `Fail` can make a control "fail as expected": use `check!` /
//! `check_eq!` for the isolation assertion alone, and `broken!` or `?` for
//! every setup step, in both variants.

use crate::cleanup::{self, Tag};
use crate::needs::Need;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// Catalogue sections, in the seed document's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    Pid,
    Net,
    Mnt,
    OtherNs,
    Cgroup,
    Seccomp,
    Docker,
    Escape,
}

impl Section {
    pub const ALL: &'static [Section] = &[
        Section::Pid,
        Section::Net,
        Section::Mnt,
        Section::OtherNs,
        Section::Cgroup,
        Section::Seccomp,
        Section::Docker,
        Section::Escape,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Section::Pid => "pid",
            Section::Net => "net",
            Section::Mnt => "mnt",
            Section::OtherNs => "other-ns",
            Section::Cgroup => "cgroup",
            Section::Seccomp => "seccomp",
            Section::Docker => "docker",
            Section::Escape => "escape",
        }
    }

    /// The id prefixes (before the dot) the catalogue uses in this section.
    pub fn id_prefixes(self) -> &'static [&'static str] {
        match self {
            Section::Pid => &["pid"],
            Section::Net => &["net"],
            Section::Mnt => &["mnt"],
            Section::OtherNs => &["uts", "ipc", "user", "cgroupns", "time", "ns"],
            Section::Cgroup => &["cg"],
            Section::Seccomp => &["sc"],
            Section::Docker => &["docker"],
            Section::Escape => &["esc"],
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Section::Pid => "1. PID namespace",
            Section::Net => "2. Network namespace",
            Section::Mnt => "3. Mount namespace",
            Section::OtherNs => "4. Other namespaces (the lsns table)",
            Section::Cgroup => "5. cgroups",
            Section::Seccomp => "6. seccomp",
            Section::Docker => "7. Docker architecture",
            Section::Escape => "8. Escape paths stay closed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The documented steps, with the isolation.
    Isolated,
    /// The same steps without the isolation: the assertion must fail.
    Control,
}

impl Variant {
    pub fn isolated(self) -> bool {
        self == Variant::Isolated
    }
}

#[derive(Debug)]
pub enum Problem {
    /// The behaviour under test was not observed.
    Fail(String),
    /// Setting up or observing broke, outside the behaviour under test.
    Broken(String),
    /// A need found unmet only while running.
    Unmet(String),
    /// The run left something behind after teardown, or the real host's
    /// state changed under it. Never the isolation under test: the runner
    /// fails the experiment when the isolated run finds it and breaks it when
    /// the control run does, never counting it as the control's failure.
    HostState(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Fail(m) => write!(f, "assertion failed: {m}"),
            Problem::Broken(m) => write!(f, "broken: {m}"),
            Problem::Unmet(m) => write!(f, "unmet need: {m}"),
            Problem::HostState(m) => write!(f, "host state: {m}"),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Problem {
    fn from(e: E) -> Self {
        Problem::Broken(format!("{:#}", e.into()))
    }
}

pub type Outcome = Result<(), Problem>;

/// Fails the experiment (not breaks it) when the condition is false.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::experiment::Problem::Fail(format!($($fmt)+)));
        }
    };
}

/// Fails the experiment when the two values differ, naming both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::experiment::Problem::Fail(format!(
                "{}: got {:?}, expected {:?}", format!($($fmt)+), l, r
            )));
        }
    }};
}

/// Breaks the experiment with a message (setup went wrong).
#[macro_export]
macro_rules! broken {
    ($($fmt:tt)+) => {
        return Err($crate::experiment::Problem::Broken(format!($($fmt)+)))
    };
}

pub type Body = fn(&mut Ctx, Variant) -> Outcome;

pub struct Experiment {
    /// The catalogue id, e.g. `pid.init-is-pid-1`.
    pub id: &'static str,
    pub section: Section,
    /// One line: what is asserted.
    pub asserts: &'static str,
    pub needs: &'static [Need],
    /// What the control run leaves out, when the catalogue has a control.
    pub control: Option<&'static str>,
    pub body: Body,
    /// Experiments that touch host-wide state another experiment also reads
    /// (e.g. counting every pid namespace) share a lock name here.
    pub exclusive: Option<&'static str>,
}

impl Experiment {
    /// The first unmet need, phrased as the reason for ignoring.
    pub fn unmet(&self, host: &crate::host::HostFacts) -> Option<String> {
        self.needs.iter().find_map(|n| n.unmet(host))
    }
}

type Teardown = Box<dyn FnOnce() + Send>;

/// The fixture an experiment body runs in. Its teardown runs in reverse
/// order when it drops, whatever the body did (kselftest's FIXTURE_TEARDOWN).
pub struct Ctx {
    pub tag: Tag,
    pub variant: Variant,
    observations: BTreeMap<String, Value>,
    measurements: BTreeMap<String, Value>,
    teardown: Vec<(String, Teardown)>,
    scratch: Option<PathBuf>,
    counter: u32,
}

impl Ctx {
    pub fn new(tag: Tag, variant: Variant) -> Ctx {
        Ctx {
            tag,
            variant,
            observations: BTreeMap::new(),
            measurements: BTreeMap::new(),
            teardown: Vec::new(),
            scratch: None,
            counter: 0,
        }
    }

    /// Records a value the assertion looked at (for the report and the diff).
    pub fn observe(&mut self, key: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        self.observations.insert(key.to_string(), v);
    }

    /// Records a fact of the machine's userspace rather than its kernel (a
    /// directory's entries, a tool's or the engine's version): kept under
    /// `userspace` in the observations, so that `diff` lists it apart and
    /// a host -> guest comparison does not read it as a kernel change.
    pub fn observe_userspace(&mut self, key: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        let group = self
            .observations
            .entry(crate::report::USERSPACE.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(m) = group {
            m.insert(key.to_string(), v);
        }
    }

    /// Records a measurement: a count, share, time or list that depends on
    /// what else runs (CPU share, throttling counts, event counters, a
    /// system-wide list). Shown in the report beside the facts, never
    /// compared by `diff` or `matrix`. The observing code decides: a value
    /// that the same kernel may give differently on a rerun is a measurement.
    pub fn measure(&mut self, key: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        self.measurements.insert(key.to_string(), v);
    }

    pub fn take_measurements(&mut self) -> BTreeMap<String, Value> {
        std::mem::take(&mut self.measurements)
    }

    /// Records a guard's bookkeeping (as the net section's host check): a
    /// measurement, since which row closes a span of guarded experiments
    /// depends on the schedule; so it never counts as the body having
    /// asserted something, and `diff` never compares it.
    pub fn observe_guard(&mut self, key: &str, value: impl Serialize) {
        self.measure(key, value);
    }

    /// Whether the body recorded an observation of its own (a pass without
    /// one asserted nothing).
    pub fn asserted_something(&self) -> bool {
        !self.observations.is_empty()
    }

    pub fn observations(&self) -> &BTreeMap<String, Value> {
        &self.observations
    }

    pub fn take_observations(&mut self) -> BTreeMap<String, Value> {
        std::mem::take(&mut self.observations)
    }

    /// Registers a teardown step; steps run last-in first-out.
    pub fn defer(&mut self, what: &str, f: impl FnOnce() + Send + 'static) {
        self.teardown.push((what.to_string(), Box::new(f)));
    }

    /// A run-unique name for a host-global resource (netns, cgroup, container).
    pub fn name(&mut self, role: &str) -> String {
        self.counter += 1;
        format!("{}-{}{}", self.tag, role, self.counter)
    }

    /// A scratch directory of this experiment, removed at teardown.
    pub fn scratch(&mut self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.scratch {
            return Ok(p.clone());
        }
        let p = cleanup::scratch_root().join(self.tag.as_str());
        cleanup::make_scratch(&p)?;
        self.scratch = Some(p.clone());
        Ok(p)
    }

    /// A command whose process (and descendants) carry this experiment's tag
    /// in their environment, so the leak check and the sweeper can find them,
    /// and die with the thread that started them.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        cleanup::tagged_command(program, &self.tag)
    }

    /// The project's own single-threaded helper (`isocheck helper ...`).
    pub fn helper(&self) -> Command {
        let mut c = self.cmd(crate::helper::helper_path());
        c.arg("helper");
        c
    }

    pub fn run_teardown(&mut self) {
        while let Some((what, f)) = self.teardown.pop() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                eprintln!("isocheck: teardown step '{what}' of {} panicked", self.tag);
            }
        }
        if let Some(p) = self.scratch.take() {
            let _ = cleanup::remove_scratch(&p);
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.run_teardown();
    }
}

pub use crate::process::read;
