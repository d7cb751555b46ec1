//! Result formats for the places people read results: KTAP (kernel test
//! infrastructure), JUnit (CI test views), the GitHub Actions job summary,
//! and a self-contained HTML matrix over many reports.

pub mod github;
pub mod html;
pub mod junit;
pub mod ktap;

use crate::experiment::Section;
use crate::report::ExperimentResult;

/// Results grouped by seed section, in the seed's order; sections without a
/// result are left out, rows of an unknown section come last under its key.
pub fn by_section(results: &[ExperimentResult]) -> Vec<(String, Vec<&ExperimentResult>)> {
    let mut out: Vec<(String, Vec<&ExperimentResult>)> = Section::ALL
        .iter()
        .map(|s| (s.key().to_string(), Vec::new()))
        .collect();
    for r in results {
        match out.iter_mut().find(|(k, _)| *k == r.section) {
            Some((_, rows)) => rows.push(r),
            None => out.push((r.section.clone(), vec![r])),
        }
    }
    out.retain(|(_, rows)| !rows.is_empty());
    out
}

use crate::report::{Report, Status};
use std::path::{Path, PathBuf};

/// The outputs and gates `isocheck run` adds beside the JSON report.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// KTAP to FILE, or to stdout for `-` (the table then goes to stderr).
    pub ktap: Option<PathBuf>,
    /// JUnit XML to this file, for CI test views.
    pub junit: Option<PathBuf>,
    /// Ignored rows fail the run unless their id starts with an allowed prefix.
    pub fail_on_ignored: bool,
    /// Id prefixes whose ignored rows do not fail the run under `fail_on_ignored`.
    pub allow_ignored: Vec<String>,
}

impl Outputs {
    /// Whether KTAP owns stdout, so the table must go to stderr.
    pub fn ktap_to_stdout(&self) -> bool {
        self.ktap.as_deref() == Some(Path::new("-"))
    }

    /// Files to write, for the up-front check that their directories exist.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.ktap
            .iter()
            .chain(self.junit.iter())
            .map(PathBuf::as_path)
            .filter(|p| *p != Path::new("-"))
    }

    /// Writes KTAP, JUnit and (under GitHub Actions) the job summary;
    /// returns the lines to print to stdout (annotations, "written to").
    pub fn write(&self, rep: &Report) -> Result<Vec<String>, String> {
        let mut said = Vec::new();
        let save = |p: &Path, text: String, what: &str| {
            crate::owner::write(p, text)
                .map(|()| format!("{what} written to {}", p.display()))
                .map_err(|e| format!("cannot write {what} {}: {e}", p.display()))
        };
        if let Some(p) = &self.ktap {
            let text = ktap::render(&rep.experiments);
            if self.ktap_to_stdout() {
                print!("{text}");
            } else {
                said.push(save(p, text, "KTAP")?);
            }
        }
        if let Some(p) = &self.junit {
            let text = junit::render(&rep.experiments, &rep.host.kernel);
            said.push(save(p, text, "JUnit")?);
        }
        if let Some(annotations) = github::publish(&rep.experiments, &rep.host.kernel) {
            said.extend(annotations);
        }
        Ok(said)
    }

    /// Ignored rows that `--fail-on-ignored` counts against the run.
    pub fn unallowed_ignored<'a>(&self, rs: &'a [ExperimentResult]) -> Vec<&'a ExperimentResult> {
        if !self.fail_on_ignored {
            return Vec::new();
        }
        rs.iter()
            .filter(|r| r.status == Status::Ignored)
            .filter(|r| {
                !self
                    .allow_ignored
                    .iter()
                    .any(|p| r.id.starts_with(p.as_str()))
            })
            .collect()
    }
}
