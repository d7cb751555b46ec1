//! Tests of the harness itself: parsers, the needs vocabulary, the runner's
//! honesty (controls, leaks, broken vs failed), the sweeper, the report diff
//! and the CLI's handling of bad input.

#[macro_use]
extern crate rusty_fork;

use assert_cmd::Command;
use isocheck::experiment::{Ctx, Experiment, Outcome, Problem, Section, Variant};
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

// ---- parsers ----

#[rstest]
#[case("6.18.44-fc-v782", (6, 18, 44))]
#[case("5.10.0-32-cloud-amd64", (5, 10, 0))]
#[case("6.12.12+bpo-cloud-amd64", (6, 12, 12))]
#[case("garbage", (0, 0, 0))]
fn kernel_versions_parse(#[case] release: &str, #[case] want: (u32, u32, u32)) {
    assert_eq!(parse_kernel_version(release), want);
}

#[rstest]
#[case("/tmp/a\\040b", "/tmp/a b")]
#[case("/x\\011y\\012z\\134", "/x\ty\nz\\")]
#[case("/plain", "/plain")]
#[case("/trailing\\04", "/trailing\\04")]
fn mountinfo_escapes_decode(#[case] raw: &str, #[case] want: &str) {
    assert_eq!(unescape_mount(raw), want);
}

const HYBRID: &str = "\
25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

#[rstest]
#[case::hybrid(HYBRID, "hybrid", vec!["cpu", "cpuacct", "memory", "pids"], vec!["hugetlb"])]
#[case::v2_only("26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "v2", vec![], vec!["hugetlb"])]
#[case::v1_only("27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "v1", vec!["memory"], vec![])]
#[case::none("1 0 0:1 / / rw - ext4 /dev/vda rw\n", "none", vec![], vec![])]
fn cgroup_layouts_are_recognised(
    #[case] mountinfo: &str,
    #[case] layout: &str,
    #[case] v1: Vec<&str>,
    #[case] v2: Vec<&str>,
) {
    let l = CgroupLayout::from_mountinfo(mountinfo, |_| "hugetlb\n".into());
    assert_eq!(l.layout, layout);
    assert_eq!(l.v1, v1);
    assert_eq!(l.v2, v2);
    if layout == "hybrid" {
        assert_eq!(
            l.v1_mounts["cpuacct"].to_str(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(l.has("hugetlb") && l.has("memory") && !l.has("rdma"));
    }
}

#[rstest]
#[case("pid:[4026531836]", Some(("pid", 4026531836)))]
#[case("time_for_children:[4026531834]", Some(("time_for_children", 4026531834)))]
#[case("pid:4026531836", None)]
#[case("net:[x]", None)]
fn ns_links_parse(#[case] link: &str, #[case] want: Option<(&str, u64)>) {
    assert_eq!(parse_ns_link(link), want);
}

#[rstest]
#[case::numbers(r#"{"namespaces":[{"ns":4026532200,"type":"pid","nprocs":2,"pid":77}]}"#)]
#[case::strings(r#"{"namespaces":[{"ns":"4026532200","type":"pid","nprocs":"2","pid":"77"}]}"#)]
fn lsns_json_parses_numbers_and_strings(#[case] text: &str) {
    let rows = parse_lsns_json(text).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].ns, rows[0].nprocs, rows[0].pid),
        (4026532200, 2, 77)
    );
    assert_eq!(rows[0].kind, "pid");
}

#[test]
fn lsns_json_rejects_rows_without_nprocs() {
    assert!(parse_lsns_json(r#"{"namespaces":[{"ns":1,"type":"pid","pid":1}]}"#).is_err());
}

#[rstest]
#[case("Name:\tsh\nNSpid:\t4242\t1\n", Some(vec![4242, 1]))]
#[case("NSpid:\t17\n", Some(vec![17]))]
#[case("Name:\tsh\n", None)]
fn nspid_parses(#[case] status: &str, #[case] want: Option<Vec<i32>>) {
    assert_eq!(parse_nspid(status), want);
}

// ---- the needs vocabulary ----

#[rstest]
#[case(Need::Root)]
#[case(Need::Tool(Tool::Ip))]
#[case(Need::Tool(Tool::QemuSystem))]
#[case(Need::Cgroup(Controller::Memory))]
#[case(Need::CgroupV1(Controller::Pids))]
#[case(Need::Kernel(5, 6))]
#[case(Need::UserNamespaces)]
#[case(Need::LibseccompDev)]
#[case(Need::Docker)]
fn needs_round_trip_through_their_names(#[case] need: Need) {
    assert_eq!(Need::from_name(&need.to_string()), Ok(need));
}

#[rstest]
#[case("rooot")]
#[case("cmd:nosuchtool")]
#[case("cgroup:rdma")]
#[case("kernel>=5")]
#[case("")]
fn unknown_need_names_are_errors(#[case] name: &str) {
    assert!(Need::from_name(name).is_err(), "{name:?} must not parse");
}

#[test]
fn every_registered_need_is_in_the_vocabulary_and_every_id_is_unique() {
    let all = isocheck::experiments::all();
    let mut ids: Vec<&str> = all.iter().map(|e| e.id).collect();
    for e in &all {
        let prefix = e.id.split('.').next().unwrap();
        assert!(
            e.section.id_prefixes().contains(&prefix),
            "{} is filed under section {}",
            e.id,
            e.section.key()
        );
        for n in e.needs {
            assert_eq!(Need::from_name(&n.to_string()).as_ref(), Ok(n));
        }
    }
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate experiment ids");
}

// ---- the runner's honesty ----

fn always_passes(ctx: &mut Ctx, _v: Variant) -> Outcome {
    ctx.observe("value", 1);
    Ok(())
}
fn breaks(_ctx: &mut Ctx, _v: Variant) -> Outcome {
    Err(Problem::Broken("setup went wrong".into()))
}
fn fails_only_in_control(_ctx: &mut Ctx, v: Variant) -> Outcome {
    if v.isolated() {
        Ok(())
    } else {
        Err(Problem::Fail("no isolation, no effect".into()))
    }
}
fn leaks_a_directory(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let dir = isocheck::cleanup::scratch_root().join(ctx.name("leak"));
    std::fs::create_dir_all(&dir)?;
    Ok(())
}
fn panics(_ctx: &mut Ctx, _v: Variant) -> Outcome {
    panic!("boom")
}
fn teardown_runs_after_failure(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let dir = ctx.scratch()?.join("made");
    std::fs::create_dir_all(&dir)?;
    let d = dir.clone();
    ctx.defer("remove", move || {
        let _ = std::fs::remove_dir(&d);
    });
    Err(Problem::Fail("assertion".into()))
}

fn fake(
    id: &'static str,
    body: isocheck::experiment::Body,
    control: Option<&'static str>,
    needs: &'static [Need],
) -> Experiment {
    Experiment {
        id,
        section: Section::Pid,
        asserts: "test",
        needs,
        control,
        body,
        exclusive: None,
    }
}

#[rstest]
#[case::control_that_passes_proves_nothing(
    always_passes,
    Some("no isolation"),
    Status::Failed,
    Some(ControlOutcome::PassedUnexpectedly),
    "proves nothing"
)]
#[case::control_that_fails_is_good(
    fails_only_in_control,
    Some("no isolation"),
    Status::Passed,
    Some(ControlOutcome::FailedAsExpected),
    ""
)]
#[case::no_control(always_passes, None, Status::Passed, None, "")]
#[case::broken_is_not_failed(breaks, None, Status::Broken, None, "setup went wrong")]
#[case::panic_is_broken(panics, None, Status::Broken, None, "panicked: boom")]
#[case::leak_fails(leaks_a_directory, None, Status::Failed, None, "left behind")]
#[case::failure_still_tears_down(
    teardown_runs_after_failure,
    None,
    Status::Failed,
    None,
    "assertion"
)]
// serial: these share the process's run tag, and each checks that nothing
// of the tag is left after it.
#[serial(run_tag)]
fn runner_reports_what_happened(
    #[case] body: isocheck::experiment::Body,
    #[case] control: Option<&'static str>,
    #[case] status: Status,
    #[case] ctl: Option<ControlOutcome>,
    #[case] reason: &str,
) {
    let exp = Box::leak(Box::new(fake("test.fake", body, control, &[])));
    let r = run_one(exp);
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.control, ctl, "{r:?}");
    if status != Status::Passed {
        let why = r.reason.clone().expect("a non-pass names its reason");
        assert!(why.contains(reason), "{why:?} should mention {reason:?}");
    }
    // Teardown ran and the leak was removed: nothing of the tag remains.
    assert!(isocheck::cleanup::leaks(&isocheck::cleanup::run_tag()).is_empty());
}

#[test]
#[serial(run_tag)]
fn unmet_needs_are_ignored_with_the_reason_never_passed() {
    let exp = Box::leak(Box::new(fake(
        "test.unmet",
        always_passes,
        None,
        &[Need::Kernel(999, 0)],
    )));
    let r = run_one(exp);
    assert_eq!(r.status, Status::Ignored);
    assert!(r.reason.unwrap().contains("kernel >= 999.0"));
}

// rusty-fork: the host probe is a process-wide OnceLock, so a probe under a
// different PATH needs a fresh process. (Never wrap rstest cases this way:
// rusty-fork re-runs the binary with `--exact <name>`, which matches no
// generated case, and the child passes without running anything.)
rusty_fork_test! {
    #[test]
    fn a_missing_tool_names_its_package() {
        std::env::set_var("PATH", "/nonexistent");
        let host = isocheck::host::HostFacts::get();
        let why = Need::Tool(Tool::Cgcreate).unmet(host).expect("cgcreate must be missing");
        assert!(why.contains("cgroup-tools"), "{why}");
    }
}

/// Guards against the trap above: a forked test that ran nothing would pass.
/// The child writes a marker; the parent checks it exists.
#[test]
fn rusty_fork_children_really_run_the_test_body() {
    let marker = std::env::temp_dir().join(format!("isocheck-fork-marker-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    rusty_fork::fork(
        rusty_fork::rusty_fork_test_name!(rusty_fork_children_really_run_the_test_body),
        rusty_fork::rusty_fork_id!(),
        |_| {},
        |child, _| {
            let status = child.wait().expect("wait");
            assert!(status.success());
        },
        || {
            // Runs only in the child, whose parent is the test process.
            let m = std::env::temp_dir()
                .join(format!("isocheck-fork-marker-{}", nix::unistd::getppid()));
            std::fs::write(m, b"ran").unwrap();
        },
    )
    .unwrap();
    assert!(marker.exists(), "the forked child did not run the body");
    let _ = std::fs::remove_file(&marker);
}

// ---- the sweeper (host-global state: one at a time, across processes) ----

#[test]
#[file_serial(isocheck_host)]
fn leftovers_of_a_dead_run_are_swept_and_a_live_runs_are_not() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let dead = isocheck::cleanup::scratch_root().join("isoc-dead1-1-x");
    std::fs::create_dir_all(&dead).unwrap();
    let mine =
        isocheck::cleanup::scratch_root().join(format!("{}9-x", isocheck::cleanup::run_tag()));
    std::fs::create_dir_all(&mine).unwrap();
    let removed = isocheck::cleanup::sweep_dead_runs();
    assert!(
        removed
            .iter()
            .any(|l| l.to_string().contains("isoc-dead1-1-x")),
        "{removed:?}"
    );
    assert!(!dead.exists());
    assert!(mine.exists(), "a live run's resource was swept");
    std::fs::remove_dir(&mine).unwrap();
}

// ---- the report and its diff ----

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
        experiments: exps,
    }
}

#[rstest]
#[case::pass_to_fail(Status::Passed, Some(Status::Failed), true)]
#[case::pass_to_broken(Status::Passed, Some(Status::Broken), true)]
#[case::pass_to_missing(Status::Passed, None, true)]
#[case::pass_to_ignored(Status::Passed, Some(Status::Ignored), false)]
#[case::fail_to_pass(Status::Failed, Some(Status::Passed), false)]
fn diff_flags_regressions(
    #[case] old: Status,
    #[case] new: Option<Status>,
    #[case] regression: bool,
) {
    let a = rep("6.1", vec![result("cg.kmem-limit", old, json!({}))]);
    let b = rep(
        "6.12",
        new.map(|s| vec![result("cg.kmem-limit", s, json!({}))])
            .unwrap_or_default(),
    );
    let d = report::diff(&a, &b);
    assert_eq!(d.status.len(), 1);
    assert_eq!(d.regressions(), usize::from(regression));
}

#[test]
fn diff_compares_nested_observations_value_by_value() {
    let a = rep(
        "6.1",
        vec![result(
            "cg.oom",
            Status::Passed,
            json!({"events": {"oom_kill": 1, "oom_group_kill": 0}, "kmem": "accepted"}),
        )],
    );
    let b = rep(
        "6.12",
        vec![result(
            "cg.oom",
            Status::Passed,
            json!({"events": {"oom_kill": 1}, "kmem": "absent"}),
        )],
    );
    let d = report::diff(&a, &b);
    assert!(d.status.is_empty());
    let keys: Vec<&str> = d.observations.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec!["events.oom_group_kill", "kmem"]);
    let text = report::render_diff(&d, "old", "new");
    assert!(text.contains("\"accepted\" -> \"absent\""), "{text}");
    assert!(text.contains("0 regression(s)"));
}

#[test]
fn regressions_are_listed_before_other_changes() {
    let a = rep(
        "a",
        vec![
            result("a.x", Status::Failed, json!({})),
            result("b.y", Status::Passed, json!({})),
        ],
    );
    let b = rep(
        "b",
        vec![
            result("a.x", Status::Passed, json!({})),
            result("b.y", Status::Failed, json!({})),
        ],
    );
    let d = report::diff(&a, &b);
    assert_eq!(d.status[0].id, "b.y");
    assert!(d.status[0].regression);
}

// ---- the CLI ----

#[test]
fn unknown_filter_prefix_names_the_closest_ids_and_exits_2() {
    isocheck()
        .args(["run", "--filter", "pid.init-is-pid1x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("closest: pid.init-is-pid-1"));
}

#[rstest]
#[case::unknown_flag(&["run", "--bogus"])]
#[case::unknown_command(&["frobnicate"])]
#[case::zero_jobs(&["run", "--jobs", "0"])]
#[case::report_dir_missing(&["run", "--filter", "pid.", "--json", "/nonexistent-dir/r.json"])]
#[case::diff_missing_file(&["diff", "/nonexistent/a.json", "/nonexistent/b.json"])]
fn bad_usage_exits_2_with_one_line(#[case] args: &[&str]) {
    isocheck()
        .args(args)
        .assert()
        .code(2)
        .stderr(predicate::str::is_empty().not());
}

#[test]
fn diff_of_a_non_report_says_how_to_make_one() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "{\"not\": \"a report\"}").unwrap();
    let p = f.path().to_str().unwrap();
    isocheck()
        .args(["diff", p, p])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("isocheck run --json"));
}

#[test]
fn diff_exits_1_on_a_regression_and_0_without() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let old = rep(
        "6.1",
        vec![result(
            "cg.pids-max",
            Status::Passed,
            json!({"eagain_at": 5}),
        )],
    );
    let new = rep(
        "6.12",
        vec![result(
            "cg.pids-max",
            Status::Failed,
            json!({"eagain_at": 6}),
        )],
    );
    std::fs::write(&a, serde_json::to_string(&old).unwrap()).unwrap();
    std::fs::write(&b, serde_json::to_string(&new).unwrap()).unwrap();
    isocheck()
        .args(["diff", a.to_str().unwrap(), b.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("REGRESSION").and(predicate::str::contains("eagain_at")));
    isocheck()
        .args(["diff", a.to_str().unwrap(), a.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 regression(s)"));
}

#[test]
fn list_shows_every_registered_id_with_its_needs() {
    let out = isocheck()
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for e in isocheck::experiments::all() {
        assert!(text.contains(e.id), "{} missing from `isocheck list`", e.id);
    }
    assert!(text.contains("needs [root"));
}

#[test]
fn help_explains_the_commands() {
    isocheck().arg("--help").assert().success().stdout(
        predicate::str::contains("run")
            .and(predicate::str::contains("doctor"))
            .and(predicate::str::contains("diff"))
            .and(predicate::str::contains("Exit status")),
    );
}

#[test]
#[file_serial(isocheck_host)]
fn run_writes_a_report_with_the_control_recorded() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    isocheck()
        .args([
            "run",
            "--filter",
            "pid.init-is-pid-1",
            "--json",
            path.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 passed, 0 failed"));
    let r = Report::load(&path).unwrap();
    assert_eq!(r.experiments.len(), 1);
    assert_eq!(r.experiments[0].status, Status::Passed);
    assert_eq!(
        r.experiments[0].control,
        Some(ControlOutcome::FailedAsExpected)
    );
    assert_eq!(r.experiments[0].observations["pid_inside"], json!(1));
    assert_eq!(
        r.experiments[0].observations["control"]["pid_inside"]
            .as_i64()
            .map(|p| p != 1),
        Some(true)
    );
}

#[test]
fn readme_lists_every_experiment_as_the_registry_has_it() {
    let out = isocheck()
        .args(["list", "--markdown"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, rest) = readme
        .split_once("<!-- experiments:begin -->\n")
        .expect("begin marker");
    let (current, _) = rest
        .split_once("<!-- experiments:end -->")
        .expect("end marker");
    assert_eq!(
        current.trim(),
        table.trim(),
        "README's table is stale: run ci/update-readme.sh"
    );
}

/// The registry is the catalogue: every catalogue id is an experiment, and
/// every experiment is a catalogue id (fixtures/catalogue-ids.txt is the
/// catalogue's id column).
#[test]
fn registry_matches_the_catalogue() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/catalogue-ids.txt"
    ))
    .unwrap();
    let mut catalogue: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let mut registry: Vec<&str> = isocheck::experiments::all().iter().map(|e| e.id).collect();
    catalogue.sort();
    registry.sort();
    assert_eq!(registry, catalogue);
}

#[rstest]
#[case("pid_inside", json!(1), Some(json!(1)))]
#[case("host_pid", json!(48211), Some(json!("<pid>")))]
#[case("cgroup_procs", json!([506, 507]), Some(json!(["<pid>", "<pid>"])))]
#[case("types.pid.own_ns", json!(4026532301u64), Some(json!("<ns-inode>")))]
#[case("wait_ms", json!(12), None)]
#[case("control.pid_inside", json!(4242), None)]
#[case("peer", json!("198.51.100.1:59467"), Some(json!("198.51.100.1:<port>")))]
#[case("stderr", json!("cgdelete: cannot remove group 'isocheck/isoc-1f2e3d-12-grp3': busy"), Some(json!("cgdelete: cannot remove group 'isocheck/isoc-<run>': busy")))]
#[case("kmem", json!("accepted"), Some(json!("accepted")))]
fn diff_keeps_only_what_the_kernel_decides(
    #[case] key: &str,
    #[case] v: serde_json::Value,
    #[case] want: Option<serde_json::Value>,
) {
    assert_eq!(report::stable(key, &v), want);
}

#[test]
fn diff_and_matrix_never_compare_measurements() {
    let with = |share: f64| {
        let mut e = result("cg.cpu", Status::Passed, json!({"quota": 50000}));
        e.measurements.insert("cpu_share".into(), json!(share));
        e
    };
    let a = rep("6.12", vec![with(0.105)]);
    let b = rep("6.12", vec![with(0.104)]);
    assert_eq!(report::diff(&a, &b), report::Diff::default());
    let m = report::matrix(&[("a".into(), a), ("b".into(), b)]);
    assert!(!m.contains("pass*"), "{m}");
    // Negative control: the same change as a fact is reported.
    let c = rep(
        "6.12",
        vec![result("cg.cpu", Status::Passed, json!({"quota": 1}))],
    );
    let d = report::diff(&rep("6.12", vec![with(0.1)]), &c);
    assert_eq!(d.observations.len(), 1);
}

#[test]
fn passed_to_ignored_is_one_line_with_its_reason() {
    let a = rep(
        "5.10",
        vec![result(
            "cg.kmem-limit",
            Status::Passed,
            json!({"a": 1, "b": 2, "c": 3}),
        )],
    );
    let mut ign = result("cg.kmem-limit", Status::Ignored, json!({}));
    ign.reason = Some("needs the memory controller on cgroup v1\nsecond line".into());
    let d = report::diff(&a, &rep("6.12", vec![ign]));
    assert!(d.observations.is_empty(), "{:?}", d.observations);
    let text = report::render_diff(&d, "a", "b");
    assert!(
        text.contains("passed -> ignored (needs the memory controller on cgroup v1)"),
        "{text}"
    );
    assert!(!text.contains("second line"), "{text}");
}
