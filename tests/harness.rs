//! Tests of the harness itself: parsers, the needs vocabulary, the runner's
//! honesty (controls, leaks, broken vs failed), the sweeper, the report diff
//! and the CLI's handling of bad input.

#[macro_use]
extern crate rusty_fork;

use assert_cmd::Command;
use isocheck::experiment::{Ctx, Experiment, Fixture, Outcome, Problem, Variant};
use isocheck::host::{parse_kernel_version, unescape_mount, CgroupLayout};
use isocheck::namespaces::{parse_lsns_json, parse_ns_link, parse_nspid};
use isocheck::needs::{Controller, Need, Tool};
use isocheck::report::{self, ControlOutcome, ExperimentResult, HostReport, Report, Status};
use isocheck::runner::run_one;
use predicates::prelude::*;
use rstest::rstest;
use serde_json::json;
use serial_test::{file_serial, serial};
use std::collections::BTreeMap;

fn isocheck() -> Command {
    Command::cargo_bin("isocheck").expect("the isocheck binary")
}

// Reports built by hand, for the diff, matrix and CLI tests.
fn result(id: &str, status: Status, obs: serde_json::Value) -> ExperimentResult {
    ExperimentResult {
        id: id.into(),
        section: "cgroup".into(),
        status,
        reason: None,
        control: None,
        observations: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(obs).unwrap(),
        measurements: BTreeMap::new(),
        duration_ms: 1,
        anchors: Vec::new(),
        cves: Vec::new(),
    }
}

fn rep(kernel: &str, exps: Vec<ExperimentResult>) -> Report {
    Report {
        schema: report::SCHEMA,
        host: HostReport {
            kernel: kernel.into(),
            ..Default::default()
        },
        run_id: "x".into(),
        wall_ms: 0,
        interrupted: false,
        experiments: exps,
    }
}

#[path = "harness/broken_engine.rs"]
mod broken_engine;
#[path = "harness/host_safety.rs"]
mod host_safety;
#[path = "harness/parsers.rs"]
mod parsers;
#[path = "harness/report_cli.rs"]
mod report_cli;
#[path = "harness/runner.rs"]
mod runner;
#[path = "harness/sweeper.rs"]
mod sweeper;
