//! GitHub Actions: a Markdown job summary (appended to the file named by
//! `GITHUB_STEP_SUMMARY`) and `::error` workflow commands, which the job's
//! page shows as annotations.

use crate::report::{Counts, ExperimentResult, Status};
use std::fmt::Write as _;

/// Workflow-command data: `%`, CR and LF must be escaped or the command is
/// cut at the first newline.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Property values additionally escape `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error` line per failed or broken row.
pub fn annotations(results: &[ExperimentResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Broken))
        .map(|r| {
            format!(
                "::error title={}::{}",
                escape_property(&format!("isocheck {} {}", r.status.word(), r.id)),
                escape_data(r.reason.as_deref().unwrap_or("(no reason recorded)"))
            )
        })
        .collect()
}

/// Markdown table cells: a `|` ends the cell, a newline the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The job summary: counts, then every failed, broken and ignored row with
/// its reason.
pub fn summary(results: &[ExperimentResult], kernel: &str) -> String {
    let c = Counts::of(results);
    let verdict = if c.ok() { "✅" } else { "❌" };
    let mut out = format!(
        "### {verdict} isocheck on kernel {}\n\n| passed | failed | ignored | broken |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
        cell(kernel),
        c.passed,
        c.failed,
        c.ignored,
        c.broken
    );
    for (status, title) in [
        (Status::Failed, "Failed"),
        (Status::Broken, "Broken"),
        (Status::Ignored, "Ignored"),
    ] {
        let rows: Vec<_> = results.iter().filter(|r| r.status == status).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n#### {title}\n\n| experiment | reason |\n|---|---|\n"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "| `{}` | {} |",
                r.id,
                cell(r.reason.as_deref().unwrap_or(""))
            );
        }
    }
    out
}

/// Appends the summary when running under GitHub Actions (the variable set)
/// and returns the annotations to print; a summary that cannot be written is
/// reported, not fatal.
pub fn publish(results: &[ExperimentResult], kernel: &str) -> Option<Vec<String>> {
    let path = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())?;
    let text = summary(results, kernel);
    let write = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    if let Err(e) = write {
        eprintln!(
            "isocheck: cannot append the job summary to {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
    Some(annotations(results))
}
