//! The machine-readable report, the terminal table, and the diff of two reports.

use crate::experiment::Section;
use crate::host::HostFacts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The report format's version: `Report::load` refuses a file of another schema rather than misread it.
pub const SCHEMA: u32 = 1;

/// An experiment's verdict: `Failed` and `Broken` fail a run; `Ignored` only under `--fail-on-ignored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The assertion held, and the control (if any) failed as it should.
    Passed,
    /// The isolation under test did not behave as asserted.
    Failed,
    /// Not run: a need (root, a tool, a kernel feature) was unmet on this host.
    Ignored,
    /// Setup or observation went wrong, so the row says nothing about isolation.
    Broken,
}

/// Every printed form of a status is here, derived from one match each, so a
/// status is never spelled ad hoc elsewhere: `word` is the JSON (serde) form
/// and the one to use in new text; `label` the terminal table's; `cell` the
/// matrix's (short, with failures loud).
impl Status {
    /// The terminal table's form: PASS, FAIL, IGNORED, BROKEN.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Ignored => "IGNORED",
            Status::Broken => "BROKEN",
        }
    }
    /// The report's (serde) form: passed, failed, ignored, broken.
    pub fn word(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Ignored => "ignored",
            Status::Broken => "broken",
        }
    }
    /// The matrix cell's form: pass, FAIL, ign, BROKEN.
    pub fn cell(self) -> &'static str {
        match self {
            Status::Passed => "pass",
            Status::Failed => "FAIL",
            Status::Ignored => "ign",
            Status::Broken => "BROKEN",
        }
    }
}

/// What the control run (the steps without the isolation) showed: the evidence that a pass means something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlOutcome {
    /// The same steps without the isolation made the assertion fail.
    FailedAsExpected,
    /// The assertion held without the isolation too: it proves nothing.
    PassedUnexpectedly,
}

/// One experiment's row in the report, as `diff` and `matrix` read it back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExperimentResult {
    /// The catalogue id, e.g. `pid.init-is-pid-1`; `diff` pairs rows by it.
    pub id: String,
    /// The section's key (`Section::key`), for grouping rows.
    pub section: String,
    /// The verdict of the isolated run.
    pub status: Status,
    /// Why the row was ignored, broken or failed; None when it passed.
    pub reason: Option<String>,
    /// None when the experiment has no control or the control was not reached.
    pub control: Option<ControlOutcome>,
    /// The facts the assertion looked at; `diff` compares these between runs.
    #[serde(default)]
    pub observations: BTreeMap<String, Value>,
    /// Values that vary between runs on the same kernel (`Ctx::measure`):
    /// shown, never compared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measurements: BTreeMap<String, Value>,
    /// Wall time in milliseconds, the isolated and control runs overlapping (0 when ignored).
    pub duration_ms: u64,
    /// The upstream tests the row follows (`Experiment::anchor`); absent
    /// in reports older than the field, so schema 1 still reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<String>,
    /// The CVEs whose boundary the row guards (`Experiment::cve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
}

/// The host a report was made on, so that a diff can tell a host change from a behaviour change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct HostReport {
    /// The kernel release, as `uname -r` gives it.
    pub kernel: String,
    /// The cgroup layout found (`HostFacts::cgroup` serialized); Null if it could not be serialized.
    pub cgroup: Value,
    /// Tool name to version, for the tools this run's experiments use.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// The Docker engine's version; None when no engine answered.
    pub docker: Option<String>,
    /// The engine's stack as facts (`enginestack`), when Docker rows ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_stack: Option<Value>,
    /// "allowed", or why unprivileged user namespaces are blocked; None in reports older than the field.
    #[serde(default)]
    pub userns: Option<String>,
    /// The iptables backend ("nf_tables" or "legacy"), from the parenthesis of `iptables --version`.
    #[serde(default)]
    pub iptables_flavour: Option<String>,
    /// Whether the run had root; many rows are ignored without it.
    #[serde(default)]
    pub is_root: bool,
}

impl HostReport {
    /// Copies only what a reader of the report needs from the probed host facts.
    pub fn from_host(h: &HostFacts) -> HostReport {
        let tools = h.tool_versions();
        let iptables_flavour = tools.get("iptables").and_then(|v| {
            v.rsplit_once('(')
                .map(|(_, f)| f.trim_end_matches(')').to_string())
        });
        HostReport {
            kernel: h.kernel.clone(),
            cgroup: serde_json::to_value(&h.cgroup).unwrap_or(Value::Null),
            tools,
            docker: h.docker.clone(),
            docker_stack: crate::enginestack::stack(),
            userns: Some(match &h.userns_blocked {
                None => "allowed".to_string(),
                Some(why) => why.clone(),
            }),
            iptables_flavour,
            is_root: h.is_root,
        }
    }
}

/// A whole run as `isocheck run --json` writes it and `diff`/`matrix` read it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always `SCHEMA` when written; checked when loaded.
    pub schema: u32,
    /// The host the run was made on.
    pub host: HostReport,
    /// The run's id (the one its resources' names carry); empty in older reports.
    #[serde(default)]
    pub run_id: String,
    /// The run's wall time in milliseconds; 0 in older reports and test fixtures.
    #[serde(default)]
    pub wall_ms: u64,
    /// A signal stopped the run: `experiments` holds only those that finished
    /// before it, so a missing row is not a regression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The rows in run order.
    pub experiments: Vec<ExperimentResult>,
}

impl Report {
    /// Reads a report file, with errors that say how to make a valid one and refusing another schema.
    pub fn load(path: &std::path::Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read report {}: {e}", path.display()))?;
        let r: Report = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not an isocheck report ({e}); produce one with `isocheck run --json FILE`",
                path.display()
            )
        })?;
        if r.schema != SCHEMA {
            return Err(format!(
                "{} has report schema {}, this isocheck reads schema {SCHEMA}",
                path.display(),
                r.schema
            ));
        }
        Ok(r)
    }

    /// The tally of the run's verdicts, for the summary line and the exit code.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.experiments)
    }
}

/// How many rows ended in each status; `ok` decides the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows that passed.
    pub passed: usize,
    /// Rows that failed: the isolation did not hold.
    pub failed: usize,
    /// Rows not run for an unmet need.
    pub ignored: usize,
    /// Rows whose setup or observation broke.
    pub broken: usize,
}

impl Counts {
    /// Tallies any slice of rows, so a partial (interrupted) run is counted the same way.
    pub fn of(rs: &[ExperimentResult]) -> Counts {
        let mut c = Counts::default();
        for r in rs {
            match r.status {
                Status::Passed => c.passed += 1,
                Status::Failed => c.failed += 1,
                Status::Ignored => c.ignored += 1,
                Status::Broken => c.broken += 1,
            }
        }
        c
    }
    /// True when nothing failed or broke; ignored rows are gated apart (`--fail-on-ignored`).
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.broken == 0
    }
}

/// One table line for an experiment, as printed while the run goes.
pub fn line(r: &ExperimentResult) -> String {
    let control = match r.control {
        Some(ControlOutcome::FailedAsExpected) => "control ok",
        Some(ControlOutcome::PassedUnexpectedly) => "CONTROL PASSED",
        None => "",
    };
    let mut s = format!(
        "  {:<7} {:<44} {:<14} {:>6} ms",
        r.status.label(),
        r.id,
        control,
        r.duration_ms
    );
    if let Some(reason) = &r.reason {
        let _ = write!(s, "\n          {reason}");
    }
    s
}

/// The table grouped by seed section, then the summary line.
pub fn table(results: &[ExperimentResult]) -> String {
    let mut out = String::new();
    for sec in Section::ALL {
        let rows: Vec<_> = results.iter().filter(|r| r.section == sec.key()).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", sec.title());
        let mut last_reason: Option<&String> = None;
        for r in rows {
            // A section ignored for one reason says it once.
            if r.status == Status::Ignored && r.reason.is_some() && r.reason.as_ref() == last_reason
            {
                let mut short = r.clone();
                short.reason = Some("(same reason)".into());
                let _ = writeln!(out, "{}", line(&short));
            } else {
                let _ = writeln!(out, "{}", line(r));
            }
            last_reason = r.reason.as_ref();
        }
    }
    let c = Counts::of(results);
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} ignored, {} broken",
        c.passed, c.failed, c.ignored, c.broken
    );
    out
}

/// Flattens nested observation objects into dotted keys, so that two
/// kernels can be compared value by value.
pub fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// An experiment whose status differs between two reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// The experiment's id.
    pub id: String,
    /// The status in the old report; None when the row was absent there.
    pub old: Option<Status>,
    /// The status in the new report; None when the row is missing from it.
    pub new: Option<Status>,
    /// Passed before and now fails, breaks or is missing: counts against the exit code.
    pub regression: bool,
    /// Why the new run did not assert (ignored or broken), in one line.
    pub reason: Option<String>,
}

/// A compared observation whose value differs between two reports (measurements are never compared).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservationChange {
    /// The experiment's id.
    pub id: String,
    /// The flattened observation key, e.g. `ns.count`.
    pub key: String,
    /// The old value; None when the key was absent.
    pub old: Option<Value>,
    /// The new value; None when the key is gone.
    pub new: Option<Value>,
}

/// What changed from one report to another, as `isocheck diff` prints it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Diff {
    /// Status changes, regressions among them.
    pub status: Vec<StatusChange>,
    /// Changed observations of experiments present in both reports.
    pub observations: Vec<ObservationChange>,
}

impl Diff {
    /// How many changes are regressions; `isocheck diff` fails when this is not zero.
    pub fn regressions(&self) -> usize {
        self.status.iter().filter(|s| s.regression).count()
    }
}

/// A regression is an experiment that passed before and now fails, breaks,
/// or is missing. Becoming ignored is listed (coverage was lost) but is a
/// change of host, not of behaviour.
fn is_regression(old: Option<Status>, new: Option<Status>) -> bool {
    old == Some(Status::Passed) && matches!(new, Some(Status::Failed | Status::Broken) | None)
}

/// What of the observations `diff` and `matrix` compare: every fact as
/// recorded, less durations and the control run's values (its outcome is
/// compared through the status and `control`). A value that names the run
/// (a host pid, an inode, a tag, a Docker id) is recorded as a measurement
/// where it is observed; no rule on key names hides a fact here, so a pid
/// inside that went from 1 to 4242 shows as 4242.
pub fn stable(key: &str, v: &Value) -> Option<Value> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let timing = ["_ms", "_us", "_usec", "nr_periods"]
        .iter()
        .any(|t| last.ends_with(t));
    if key == "control" || key.starts_with("control.") || key == "control_failure" || timing {
        return None;
    }
    Some(v.clone())
}

/// Compares two reports row by row (by id) and observation by observation, leaving measurements out.
pub fn diff(old: &Report, new: &Report) -> Diff {
    let index = |r: &Report| -> BTreeMap<String, ExperimentResult> {
        r.experiments
            .iter()
            .map(|e| (e.id.clone(), e.clone()))
            .collect()
    };
    let (o, n) = (index(old), index(new));
    let mut ids: Vec<&String> = o.keys().chain(n.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut d = Diff::default();
    for id in ids {
        let (a, b) = (o.get(id), n.get(id));
        let (sa, sb) = (a.map(|x| x.status), b.map(|x| x.status));
        if sa != sb {
            d.status.push(StatusChange {
                id: id.clone(),
                old: sa,
                new: sb,
                regression: is_regression(sa, sb),
                reason: b.and_then(|x| x.reason.as_deref()).map(first_line),
            });
            // A row that did not assert on one side has no facts to compare:
            // its status line and reason say it all.
            let asserted = |s: Option<Status>| matches!(s, Some(Status::Passed | Status::Failed));
            if !asserted(sa) || !asserted(sb) {
                continue;
            }
        }
        fact_changes(id, a, b, &mut d.observations);
    }
    // Regressions first, then other status changes.
    d.status.sort_by_key(|s| (!s.regression, s.id.clone()));
    d
}

/// The stable observations (facts) of one experiment that differ between
/// two reports, appended to `out`.
fn fact_changes(
    id: &str,
    a: Option<&ExperimentResult>,
    b: Option<&ExperimentResult>,
    out: &mut Vec<ObservationChange>,
) {
    let (fa, fb) = (
        a.map(stable_observations).unwrap_or_default(),
        b.map(stable_observations).unwrap_or_default(),
    );
    let mut keys: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (va, vb) = (fa.get(k), fb.get(k));
        if va != vb {
            out.push(ObservationChange {
                id: id.to_string(),
                key: k.clone(),
                old: va.cloned(),
                new: vb.cloned(),
            });
        }
    }
}

/// The observations group of userspace facts: `diff` lists them apart from
/// the kernel's facts, `matrix` does not mark a cell for them.
pub use crate::experiment::USERSPACE;

/// Whether a flattened observation key is a userspace fact.
pub fn is_userspace(key: &str) -> bool {
    key.strip_prefix(USERSPACE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The text `isocheck diff` prints: status changes first, then observations, userspace facts apart.
pub fn render_diff(d: &Diff, old_name: &str, new_name: &str) -> String {
    let word = |s: Option<Status>| s.map(Status::word).unwrap_or("absent");
    let mut out = String::new();
    let _ = writeln!(out, "status changes ({old_name} -> {new_name}):");
    if d.status.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for s in &d.status {
        let _ = writeln!(
            out,
            "  {} {:<44} {} -> {}{}",
            if s.regression {
                "REGRESSION"
            } else {
                "changed   "
            },
            s.id,
            word(s.old),
            word(s.new),
            s.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let (user, kernel): (Vec<_>, Vec<_>) =
        d.observations.iter().partition(|o| is_userspace(&o.key));
    let _ = writeln!(out, "changed facts (measurements are never compared):");
    fact_lines(&mut out, &kernel);
    if !user.is_empty() {
        let _ = writeln!(
            out,
            "changed facts of the userspace (tools, engine, files; not the kernel):"
        );
        fact_lines(&mut out, &user);
    }
    let _ = writeln!(out, "{} regression(s)", d.regressions());
    out
}

fn fact_lines(out: &mut String, changes: &[&ObservationChange]) {
    if changes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let show = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or("absent".into());
    for o in changes {
        let _ = writeln!(
            out,
            "  {:<44} {:<32} {} -> {}",
            o.id,
            o.key,
            show(&o.old),
            show(&o.new)
        );
    }
}

/// The first line of a reason, at most 160 characters (a diff line).
fn first_line(r: &str) -> String {
    let line = r.lines().next().unwrap_or("");
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// The stable observations of one experiment, flattened.
fn stable_observations(e: &ExperimentResult) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for (k, v) in &e.observations {
        flatten(k, v, &mut m);
    }
    m.into_iter()
        .filter_map(|(k, v)| stable(&k, &v).map(|v| (k, v)))
        .collect()
}

/// The stable observations without the userspace group: what marks a
/// matrix cell.
fn kernel_facts(e: &ExperimentResult) -> BTreeMap<String, Value> {
    let mut m = stable_observations(e);
    m.retain(|k, _| !is_userspace(k));
    m
}

/// One table over several reports (kernels): experiments as rows, reports
/// as columns. A cell is the status, with `*` where the stable observations
/// differ from the first column's (`isocheck diff` gives the details).
pub fn matrix(cols: &[(String, Report)]) -> String {
    let mut rows = matrix_rows(cols);
    rows.push(
        std::iter::once("kernel".to_string())
            .chain(cols.iter().map(|(_, r)| r.host.kernel.clone()))
            .collect(),
    );
    rows.push(
        std::iter::once("stack".to_string())
            .chain(cols.iter().map(|(_, r)| {
                r.host
                    .docker_stack
                    .as_ref()
                    .map_or_else(|| "-".to_string(), crate::enginestack::label)
            }))
            .collect(),
    );
    rows.push(
        std::iter::once("cgroup".to_string())
            .chain(cols.iter().map(|(_, r)| {
                r.host
                    .cgroup
                    .get("layout")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            }))
            .collect(),
    );
    // The kernel, stack and cgroup rows close the table under a rule.
    let mut out = aligned(&rows, 3);
    let _ = writeln!(
        out,
        "(* = a fact differs from the first column; measurements never mark a cell; see `isocheck diff`)"
    );
    out
}

/// The matrix's header and one row per experiment (in order of first
/// appearance over the columns).
fn matrix_rows(cols: &[(String, Report)]) -> Vec<Vec<String>> {
    let mut ids: Vec<&str> = Vec::new();
    for (_, r) in cols {
        for e in &r.experiments {
            if !ids.contains(&e.id.as_str()) {
                ids.push(&e.id);
            }
        }
    }
    let find = |r: &'_ Report, id: &str| r.experiments.iter().find(|e| e.id == id).cloned();
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("experiment".to_string())
        .chain(cols.iter().map(|(l, _)| l.clone()))
        .collect()];
    for id in &ids {
        // Only rows that asserted on both sides have facts to compare; an
        // ignored cell says so through its status.
        let asserted = |e: &ExperimentResult| matches!(e.status, Status::Passed | Status::Failed);
        let base = cols
            .first()
            .and_then(|(_, r)| find(r, id))
            .filter(asserted)
            .map(|e| kernel_facts(&e));
        let mut row = vec![id.to_string()];
        for (k, (_, r)) in cols.iter().enumerate() {
            row.push(match find(r, id) {
                None => "-".into(),
                Some(e) => {
                    let differs = k > 0
                        && asserted(&e)
                        && base.as_ref().is_some_and(|b| *b != kernel_facts(&e));
                    format!("{}{}", e.status.cell(), if differs { "*" } else { "" })
                }
            });
        }
        rows.push(row);
    }
    rows
}

/// Left-aligned columns, with a rule under the header and above the last
/// two (host) rows.
fn aligned(rows: &[Vec<String>], footer: usize) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 || i + footer + 1 == rows.len() {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "{}", rule.join("  "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Status;

    /// `word` is the form reports carry: a reader of the JSON and of the
    /// text sees the same spelling.
    #[test]
    fn the_word_is_the_json_form() {
        for s in [
            Status::Passed,
            Status::Failed,
            Status::Ignored,
            Status::Broken,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.word());
        }
    }
}
