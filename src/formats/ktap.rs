//! KTAP version 1 (the kernel's Documentation/dev-tools/ktap.rst): one
//! subtest per seed section, one result line per experiment.
//!
//! Ignored rows are `ok N id # SKIP reason` (a skip does not fail its
//! parent); broken rows are `not ok N id # ERROR reason`; a failed row's
//! reason goes into diagnostic lines just before its result line, as the
//! specification recommends.

use super::by_section;
use crate::report::{ExperimentResult, Status};
use std::fmt::Write as _;

/// The description may be any words but cannot include `#`; diagnostic data
/// is one line.
fn clean(s: &str) -> String {
    s.replace(['\n', '\r'], " ").trim().to_string()
}

fn name(id: &str) -> String {
    clean(id).replace('#', "_")
}

fn result_line(out: &mut String, indent: &str, n: usize, r: &ExperimentResult) {
    let reason = r.reason.as_deref().map(clean).unwrap_or_default();
    let id = name(&r.id);
    match r.status {
        Status::Passed => {
            let _ = writeln!(out, "{indent}ok {n} {id}");
        }
        Status::Ignored => {
            let _ = writeln!(out, "{indent}ok {n} {id} # SKIP {reason}");
        }
        Status::Failed => {
            for l in r.reason.as_deref().unwrap_or("failed").lines() {
                let _ = writeln!(out, "{indent}# {id}: {}", l.trim_end());
            }
            let _ = writeln!(out, "{indent}not ok {n} {id}");
        }
        Status::Broken => {
            let _ = writeln!(out, "{indent}not ok {n} {id} # ERROR {reason}");
        }
    }
}

/// The whole run as KTAP text.
pub fn render(results: &[ExperimentResult]) -> String {
    let sections = by_section(results);
    let mut out = format!("KTAP version 1\n1..{}\n", sections.len());
    for (i, (key, rows)) in sections.iter().enumerate() {
        let _ = write!(out, "  KTAP version 1\n  1..{}\n", rows.len());
        for (j, r) in rows.iter().enumerate() {
            result_line(&mut out, "  ", j + 1, r);
        }
        let bad = rows
            .iter()
            .filter(|r| matches!(r.status, Status::Failed | Status::Broken))
            .count();
        let all_skipped = rows.iter().all(|r| r.status == Status::Ignored);
        let n = i + 1;
        if bad > 0 {
            let _ = writeln!(out, "# {key}: {bad} of {} not ok", rows.len());
            let _ = writeln!(out, "not ok {n} {key}");
        } else if all_skipped {
            let _ = writeln!(out, "ok {n} {key} # SKIP every experiment ignored");
        } else {
            let _ = writeln!(out, "ok {n} {key}");
        }
    }
    out
}
