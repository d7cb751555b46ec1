//! JUnit XML, the format CI test views read: one `<testsuite>` per seed
//! section, one `<testcase>` per experiment (classname = section). Ignored
//! rows are `<skipped>` with their reason (nextest's JUnit drops them), a
//! failed row is a `<failure>` carrying the failed assertion, a broken row an
//! `<error>`: the experiment could not set itself up.

use super::by_section;
use crate::report::{ExperimentResult, Status};
use std::fmt::Write as _;

/// Escapes text for an attribute or element; drops characters XML 1.0 cannot
/// carry at all (control characters other than tab and newlines).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Element text needs only `&`, `<` and `>` escaped; newlines stay.
fn escape_text(s: &str) -> String {
    escape(s)
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#10;", "\n")
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn testcase(out: &mut String, r: &ExperimentResult) {
    let _ = writeln!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
        escape(&r.id),
        escape(&r.section),
        secs(r.duration_ms)
    );
    let reason = r.reason.as_deref().unwrap_or("");
    let (m, full) = (escape(first_line(reason)), escape_text(reason));
    match r.status {
        Status::Passed => {}
        Status::Ignored => {
            let _ = writeln!(out, "      <skipped message=\"{m}\"/>");
        }
        Status::Failed => {
            let _ = writeln!(
                out,
                "      <failure message=\"{m}\" type=\"assertion\">{full}</failure>"
            );
        }
        Status::Broken => {
            let _ = writeln!(
                out,
                "      <error message=\"{m}\" type=\"broken\">{full}</error>"
            );
        }
    }
    if !r.observations.is_empty() {
        let obs = serde_json::to_string(&r.observations).unwrap_or_default();
        let _ = writeln!(out, "      <system-out>{}</system-out>", escape_text(&obs));
    }
    out.push_str("    </testcase>\n");
}

fn count(rows: &[&ExperimentResult], s: Status) -> usize {
    rows.iter().filter(|r| r.status == s).count()
}

fn attrs(rows: &[&ExperimentResult]) -> String {
    let ms: u64 = rows.iter().map(|r| r.duration_ms).sum();
    format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"",
        rows.len(),
        count(rows, Status::Failed),
        count(rows, Status::Broken),
        count(rows, Status::Ignored),
        secs(ms)
    )
}

/// The whole run as a JUnit document; `kernel` names the host in each suite's
/// properties so that reports of several kernels stay apart.
pub fn render(results: &[ExperimentResult], kernel: &str) -> String {
    let all: Vec<&ExperimentResult> = results.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"isocheck\" {}>", attrs(&all));
    for (key, rows) in by_section(results) {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" {}>",
            escape(&key),
            attrs(&rows)
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"kernel\" value=\"{}\"/></properties>",
            escape(kernel)
        );
        for r in rows {
            testcase(&mut out, r);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
