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
use crate::scope::{Names, Scope};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// The observations group of facts about the machine's userspace
/// (`Ctx::observe_userspace`), kept apart from the kernel's facts: the
/// report's `diff` and `matrix` read it.
pub const USERSPACE: &str = "userspace";

/// Catalogue sections, in the seed document's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Section 1: PID namespace rows (`pid.`).
    Pid,
    /// Section 2: network namespace rows (`net.`).
    Net,
    /// Section 3: mount namespace rows (`mnt.`).
    Mnt,
    /// Section 4: UTS, IPC, user, cgroup and time namespace rows.
    OtherNs,
    /// Section 5: cgroup rows (`cg.`).
    Cgroup,
    /// Section 6: seccomp rows (`sc.`).
    Seccomp,
    /// Section 7: Docker rows (`docker.`).
    Docker,
    /// Section 8: escape paths that must stay closed (`esc.`).
    Escape,
}

impl Section {
    /// Every section in catalogue order: `of_id` and the report's grouping walk it.
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

    /// The section's name in the report's JSON (`ExperimentResult::section`) and the matrix.
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
    pub const fn id_prefixes(self) -> &'static [&'static str] {
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

    /// The one mapping from an experiment id to its section: the prefix
    /// before the first dot. `None` for a prefix no section uses.
    pub const fn of_id(id: &str) -> Option<Section> {
        let mut s = 0;
        while s < Section::ALL.len() {
            let prefixes = Section::ALL[s].id_prefixes();
            let mut p = 0;
            while p < prefixes.len() {
                if is_prefix_of(prefixes[p].as_bytes(), id.as_bytes()) {
                    return Some(Section::ALL[s]);
                }
                p += 1;
            }
            s += 1;
        }
        None
    }

    /// The heading of the section in the terminal table and the matrix.
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

/// Whether `id` is `prefix` followed by a dot (in a const fn: no `starts_with`).
const fn is_prefix_of(prefix: &[u8], id: &[u8]) -> bool {
    if id.len() <= prefix.len() || id[prefix.len()] != b'.' {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if prefix[i] != id[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Which run of an experiment's body this is: the body decides per variant whether to isolate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The documented steps, with the isolation.
    Isolated,
    /// The same steps without the isolation: the assertion must fail.
    Control,
}

impl Variant {
    /// Shorthand for the body's branch: apply the isolation only when true.
    pub fn isolated(self) -> bool {
        self == Variant::Isolated
    }
}

/// Why a body did not pass; the runner turns each kind into a different status.
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

/// What a body returns: `Ok` passes, a `Problem` says why not.
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

/// An experiment's body, run once per variant with a fresh context.
pub type Body = fn(&mut Ctx, Variant) -> Outcome;

/// One catalogue row, declared with the const builder so that every section
/// writes it the same way and rare fields keep their defaults:
/// `Experiment::new("pid.init-is-pid-1", init_is_pid_1).asserts("..")
/// .needs(needs![ROOT, cmd::UNSHARE]).control("..")`.
pub struct Experiment {
    /// The catalogue id, e.g. `pid.init-is-pid-1`.
    pub id: &'static str,
    /// Derived from the id's prefix (`Section::of_id`), never written by hand.
    pub section: Section,
    /// One line: what is asserted.
    pub asserts: &'static str,
    /// Preconditions checked before the run; an unmet one ignores the row.
    pub needs: &'static [Need],
    /// What the control run leaves out, when the catalogue has a control.
    pub control: Option<&'static str>,
    /// The steps and the assertion.
    pub body: Body,
    /// Experiments that touch host-wide state another experiment also reads
    /// (e.g. counting every pid namespace) share a lock name here.
    pub exclusive: Option<&'static str>,
    /// The section's fixture around the body (`Fixture::around_each`).
    pub fixture: Option<&'static Fixture>,
    /// The upstream tests this row follows (`LTP pidns05`, `kselftest
    /// test_kill`): docs/coverage.md is built from them.
    pub anchors: Refs,
    /// The CVEs whose boundary this row guards (`isocheck list --cve`).
    pub cves: Refs,
}

/// A short list of names kept in a fixed array, because a const builder
/// cannot grow a `&'static` slice one call at a time, and one
/// `.anchor("…")` per line is what ci/apply-anchors.py writes and a reader
/// greps for.
#[derive(Clone, Copy)]
pub struct Refs {
    items: [&'static str; Refs::CAPACITY],
    len: usize,
}

impl Refs {
    /// The most names one row carries; more is a compile error in the
    /// registry's `static`, not a silent drop.
    pub const CAPACITY: usize = 8;

    /// No names.
    pub const EMPTY: Refs = Refs {
        items: [""; Refs::CAPACITY],
        len: 0,
    };

    const fn with(mut self, name: &'static str) -> Refs {
        if self.len == Refs::CAPACITY {
            panic!("more than Refs::CAPACITY anchors or CVEs on one experiment");
        }
        self.items[self.len] = name;
        self.len += 1;
        self
    }

    /// The names in the order the builder was given them.
    pub fn as_slice(&self) -> &[&'static str] {
        &self.items[..self.len]
    }
}

impl Experiment {
    /// An experiment with its id and body; the id's prefix picks the section
    /// (an unknown prefix is a compile error in a `static`).
    pub const fn new(id: &'static str, body: Body) -> Experiment {
        let Some(section) = Section::of_id(id) else {
            panic!("experiment id without a known section prefix (Section::id_prefixes)");
        };
        Experiment {
            id,
            section,
            asserts: "",
            needs: &[],
            control: None,
            body,
            exclusive: None,
            fixture: None,
            anchors: Refs::EMPTY,
            cves: Refs::EMPTY,
        }
    }

    /// The catalogue's "asserts" text.
    pub const fn asserts(mut self, what: &'static str) -> Experiment {
        self.asserts = what;
        self
    }

    /// What the host must have; compose shared groups with `needs!`.
    pub const fn needs(mut self, needs: &'static [Need]) -> Experiment {
        self.needs = needs;
        self
    }

    /// The negative control: what the same steps leave out.
    pub const fn control(mut self, without: &'static str) -> Experiment {
        self.control = Some(without);
        self
    }

    /// An upstream test this row follows, as `SUITE TEST[ CASE]` (`LTP
    /// pidns05`, `kselftest seccomp_bpf precedence`); written by
    /// ci/apply-anchors.py from fixtures/anchors.tsv, never by hand.
    pub const fn anchor(mut self, test: &'static str) -> Experiment {
        self.anchors = self.anchors.with(test);
        self
    }

    /// A CVE whose boundary this row guards (`CVE-2021-4197`); written
    /// by ci/apply-anchors.py from fixtures/anchors.tsv.
    pub const fn cve(mut self, id: &'static str) -> Experiment {
        self.cves = self.cves.with(id);
        self
    }

    /// Serialises this experiment with every other holding the same lock.
    pub const fn exclusive(mut self, lock: &'static str) -> Experiment {
        self.exclusive = Some(lock);
        self
    }

    /// The first unmet need, phrased as the reason for ignoring.
    pub fn unmet(&self, host: &crate::host::HostFacts) -> Option<String> {
        self.needs.iter().find_map(|n| n.unmet(host))
    }
}

/// Setup and teardown a whole section runs around each body, declared once
/// per section (kselftest's FIXTURE_SETUP / FIXTURE_TEARDOWN) and applied by
/// the runner, so no body can forget it.
pub struct Fixture {
    /// Before the body; an error skips the body and the teardown.
    pub setup: fn(&mut Ctx) -> Outcome,
    /// After the body, whatever it returned (a panic included, as broken);
    /// it may replace the body's outcome (e.g. with `Problem::HostState`).
    pub teardown: fn(&mut Ctx, Outcome) -> Outcome,
}

impl Fixture {
    /// Marks every experiment of a section's registry as run inside `self`:
    /// `pub static EXPERIMENTS: &[Experiment] = &FIXTURE.around_each([..]);`
    pub const fn around_each<const N: usize>(
        &'static self,
        mut exps: [Experiment; N],
    ) -> [Experiment; N] {
        let mut i = 0;
        while i < N {
            exps[i].fixture = Some(self);
            i += 1;
        }
        exps
    }
}

type Teardown = Box<dyn FnOnce() + Send>;

/// The fixture an experiment body runs in. Its teardown runs in reverse
/// order when it drops, whatever the body did (kselftest's FIXTURE_TEARDOWN).
pub struct Ctx {
    /// The run-unique tag carried by the experiment's processes and resource names.
    pub tag: Tag,
    /// The run (isolated or control) this context serves.
    pub variant: Variant,
    observations: BTreeMap<String, Value>,
    measurements: BTreeMap<String, Value>,
    teardown: Vec<(String, Teardown)>,
    scratch: Option<PathBuf>,
    /// The scratch directory's name under the scratch root: the tag, or for
    /// a fork a name of its own (the parent's teardown removes the tag's).
    scratch_name: Option<String>,
    names: Names,
}

impl Ctx {
    /// A context with no teardown or scratch yet; the runner makes one per variant.
    pub fn new(tag: Tag, variant: Variant) -> Ctx {
        Ctx {
            tag,
            variant,
            observations: BTreeMap::new(),
            measurements: BTreeMap::new(),
            teardown: Vec::new(),
            scratch: None,
            scratch_name: None,
            names: Names::default(),
        }
    }

    /// A context for a step on a parallel thread (a second container while
    /// the first is probed): the same tag, so the leak check and the time
    /// limit see its processes, and the same name counter, so its resources
    /// never collide with the parent's. Its teardown runs when it drops; its
    /// observations are its own (record them on the parent).
    pub fn fork(&self) -> Ctx {
        let mut f = Ctx::new(self.tag.clone(), self.variant);
        f.names = self.names.clone();
        f.scratch_name = Some(self.names.next(&self.tag, "fork"));
        f
    }

    /// Records a value the assertion looked at (for the report and the diff).
    pub fn observe(&mut self, key: &str, value: impl Serialize) {
        let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
        untag(&mut v, self.tag.as_str());
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
            .entry(USERSPACE.to_string())
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

    /// Hands the measurements to the runner for the report, leaving none behind.
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

    /// What the body has recorded so far, for a body that asserts on its own observations.
    pub fn observations(&self) -> &BTreeMap<String, Value> {
        &self.observations
    }

    /// Hands the observations to the runner for the report, leaving none behind.
    pub fn take_observations(&mut self) -> BTreeMap<String, Value> {
        std::mem::take(&mut self.observations)
    }

    /// Registers a teardown step; steps run last-in first-out.
    pub fn defer(&mut self, what: &str, f: impl FnOnce() + Send + 'static) {
        self.teardown.push((what.to_string(), Box::new(f)));
    }

    /// A run-unique name for a host-global resource (netns, cgroup, container).
    pub fn name(&mut self, role: &str) -> String {
        self.names.next(&self.tag, role)
    }

    /// A scratch directory of this experiment, removed at teardown.
    pub fn scratch(&mut self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.scratch {
            return Ok(p.clone());
        }
        let dir = self.scratch_name.as_deref().unwrap_or(self.tag.as_str());
        let p = cleanup::scratch_root().join(dir);
        cleanup::make_scratch(&p)?;
        self.scratch = Some(p.clone());
        Ok(p)
    }

    /// A command whose process (and descendants) carry this experiment's tag
    /// in their environment, so the leak check and the sweeper can find them,
    /// and die with the thread that started them.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        Scope::cmd(self, program)
    }

    /// The project's own single-threaded helper (`isocheck helper ...`).
    pub fn helper(&self) -> Command {
        Scope::helper(self)
    }

    /// Runs the deferred steps last-in first-out and removes the scratch directory; a panicking step is reported, not fatal. Drop calls it too.
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

/// Mechanisms (netns, docker) create resources in a `Ctx` through this, so
/// they need neither `Ctx` nor `Problem`.
impl Scope for Ctx {
    fn tag(&self) -> &Tag {
        &self.tag
    }

    fn name(&mut self, role: &str) -> String {
        Ctx::name(self, role)
    }

    fn defer(&mut self, what: &str, f: impl FnOnce() + Send + 'static) {
        Ctx::defer(self, what, f)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.run_teardown();
    }
}

pub use crate::process::read;

/// Writes the experiment's own tag as `<tag>` in every string of a fact:
/// the names it gave (a hostname, a scratch path in a tool's message) are
/// the same fact on every run, and `diff` compares facts as recorded.
fn untag(v: &mut Value, tag: &str) {
    match v {
        Value::String(s) if s.contains(tag) => *s = s.replace(tag, "<tag>"),
        Value::Array(a) => a.iter_mut().for_each(|x| untag(x, tag)),
        Value::Object(m) => m.values_mut().for_each(|x| untag(x, tag)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork on another thread shares the parent's name counter: the same
    /// role never gives the same name twice (docker's parallel steps relied
    /// on picking another role before `fork`).
    #[test]
    fn a_fork_never_repeats_a_name_of_its_parent() {
        let mut ctx = Ctx::new(cleanup::new_tag(), Variant::Isolated);
        let mut fork = ctx.fork();
        assert_eq!(fork.tag, ctx.tag);
        let theirs = std::thread::spawn(move || (0..50).map(|_| fork.name("ctr")).collect());
        let mut names: Vec<String> = (0..50).map(|_| ctx.name("ctr")).collect();
        names.extend(theirs.join().unwrap_or_else(|_| Vec::new()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!((n, names.len()), (100, 100));
        assert!(names.iter().all(|x| ctx.tag.owns(x)), "{names:?}");
    }

    /// A fork's scratch directory is its own (and carries the tag): its
    /// teardown leaves the parent's in place.
    #[test]
    fn a_fork_has_its_own_scratch_directory() {
        let mut ctx = Ctx::new(cleanup::new_tag(), Variant::Isolated);
        let mine = ctx.scratch().expect("scratch");
        let mut fork = ctx.fork();
        let theirs = fork.scratch().expect("fork scratch");
        assert_ne!(mine, theirs);
        let name = theirs.file_name().unwrap_or_default().to_string_lossy();
        assert!(ctx.tag.owns(&name), "{name}");
        drop(fork);
        assert!(mine.is_dir() && !theirs.exists());
        drop(ctx);
        assert!(!mine.exists());
    }
}
