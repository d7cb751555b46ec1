//! The machine-readable report, the terminal table, and the diff of two reports.

use crate::experiment::Section;
use crate::host::HostFacts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const SCHEMA: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    Ignored,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlOutcome {
    /// The same steps without the isolation made the assertion fail.
    FailedAsExpected,
    /// The assertion held without the isolation too: it proves nothing.
    PassedUnexpectedly,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExperimentResult {
    pub id: String,
    pub section: String,
    pub status: Status,
    pub reason: Option<String>,
    pub control: Option<ControlOutcome>,
    #[serde(default)]
    pub observations: BTreeMap<String, Value>,
    /// Values that vary between runs on the same kernel (`Ctx::measure`):
    /// shown, never compared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measurements: BTreeMap<String, Value>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct HostReport {
    pub kernel: String,
    pub cgroup: Value,
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    pub docker: Option<String>,
    #[serde(default)]
    pub userns: Option<String>,
    #[serde(default)]
    pub iptables_flavour: Option<String>,
    #[serde(default)]
    pub is_root: bool,
}

impl HostReport {
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
            userns: Some(match &h.userns_blocked {
                None => "allowed".to_string(),
                Some(why) => why.clone(),
            }),
            iptables_flavour,
            is_root: h.is_root,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: u32,
    pub host: HostReport,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub wall_ms: u64,
    /// A signal stopped the run: `experiments` holds only those that finished
    /// before it, so a missing row is not a regression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    pub experiments: Vec<ExperimentResult>,
}

impl Report {
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

    pub fn counts(&self) -> Counts {
        Counts::of(&self.experiments)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub broken: usize,
}

impl Counts {
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

#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    pub id: String,
    pub old: Option<Status>,
    pub new: Option<Status>,
    pub regression: bool,
    /// Why the new run did not assert (ignored or broken), in one line.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservationChange {
    pub id: String,
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Diff {
    pub status: Vec<StatusChange>,
    pub observations: Vec<ObservationChange>,
}

impl Diff {
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

/// Observations that name this run rather than the kernel's behaviour are
/// left out of the comparison or reduced to their shape: durations, pids
/// (other than the 0 and 1 that namespaces are about), namespace inode
/// numbers, the suite's run-unique names and Docker ids, and the control
/// run's values (its outcome is compared through the status and `control`).
/// Without this every cell of a kernel matrix differs.
pub fn stable(key: &str, v: &Value) -> Option<Value> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let timing = ["_ms", "_us", "_usec", "nr_periods"]
        .iter()
        .any(|t| last.ends_with(t));
    if key == "control" || key.starts_with("control.") || key == "control_failure" || timing {
        return None;
    }
    if let Some(n) = v.as_u64() {
        if (0xEFFF_FFF0..=0xFFFF_FFFF).contains(&n) {
            return Some(Value::String("<ns-inode>".into()));
        }
        if (last.contains("pid") || last.contains("procs")) && n > 1 {
            return Some(Value::String("<pid>".into()));
        }
        if last.ends_with("_id") {
            return Some(Value::String("<id>".into()));
        }
    }
    match v {
        Value::String(s) => Some(Value::String(mask_run_names(s))),
        Value::Array(a) => Some(Value::Array(
            a.iter().filter_map(|x| stable(key, x)).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Replaces `isoc-<run>-<n>…` names, 64-hex Docker ids and the ephemeral
/// port of an `address:port` in a text.
pub fn mask_run_names(s: &str) -> String {
    let s = match s.rsplit_once(':') {
        Some((addr, port))
            if port.len() >= 4
                && port.chars().all(|c| c.is_ascii_digit())
                && addr.parse::<std::net::IpAddr>().is_ok() =>
        {
            format!("{addr}:<port>")
        }
        _ => s.to_string(),
    };
    let s = s.as_str();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix("isoc-") {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(tail.len());
            out.push_str("isoc-<run>");
            rest = &tail[end..];
            continue;
        }
        let hex = rest.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex >= 64 {
            out.push_str("<id>");
            rest = &rest[hex..];
            continue;
        }
        // A shorter hex run is copied whole, so its tail never starts a match.
        let step = if hex > 0 {
            hex
        } else {
            rest.chars().next().map_or(1, char::len_utf8)
        };
        out.push_str(&rest[..step]);
        rest = &rest[step..];
    }
    out
}

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
    let mut out = aligned(&rows);
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
fn aligned(rows: &[Vec<String>]) -> String {
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
        if i == 0 || i == rows.len() - 3 {
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
