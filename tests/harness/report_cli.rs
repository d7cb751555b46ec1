//! The report, its diff and matrix, and the CLI's handling of bad input.

use super::*;

// ---- the report and its diff ----

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
#[case::report_is_a_directory(&["run", "--filter", "pid.", "--json", "/tmp"])]
#[case::report_unwritable(&["run", "--filter", "pid.", "--json", "/proc/version"])]
#[case::zero_timeout(&["run", "--filter", "pid.", "--timeout", "0"])]
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

/// Facts are compared as recorded: no key-name rule masks a value (a pid
/// inside that became 4242 is 4242); only durations and the control run's
/// values stay out. Values that name the run are measurements where observed.
#[rstest]
#[case("pid_inside", json!(1), Some(json!(1)))]
#[case("pid_inside", json!(4242), Some(json!(4242)))]
#[case("lsns_nprocs", json!(3), Some(json!(3)))]
#[case("cgroup_procs_lists_it", json!(true), Some(json!(true)))]
#[case("wait_ms", json!(12), None)]
#[case("control.pid_inside", json!(4242), None)]
#[case("kmem", json!("accepted"), Some(json!("accepted")))]
fn diff_keeps_only_what_the_kernel_decides(
    #[case] key: &str,
    #[case] v: serde_json::Value,
    #[case] want: Option<serde_json::Value>,
) {
    assert_eq!(report::stable(key, &v), want);
}

/// The case: `diff` shows the new value of a changed fact.
#[test]
fn diff_prints_a_changed_pid_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pid: i64| {
        let r = rep(
            name,
            vec![result(
                "pid.init-is-pid-1",
                Status::Passed,
                json!({"pid_inside": pid}),
            )],
        );
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        p
    };
    let (old, new) = (write("old", 1), write("new", 4242));
    isocheck()
        .arg("diff")
        .arg(&old)
        .arg(&new)
        .assert()
        .stdout(predicate::str::contains("pid_inside").and(predicate::str::contains("1 -> 4242")));
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
fn userspace_facts_are_listed_apart_and_never_mark_a_matrix_cell() {
    let with = |n: u64, busy: bool| {
        result(
            "mnt.bind-mount-invisible-to-host",
            Status::Passed,
            json!({"userspace": {"usr_bin_entries": n}, "host_sees_mount": busy}),
        )
    };
    let (host, guest) = (
        rep("6.18", vec![with(1200, false)]),
        rep("6.12", vec![with(40, false)]),
    );
    let d = report::diff(&host, &guest);
    assert_eq!(d.observations.len(), 1);
    let text = report::render_diff(&d, "host", "guest");
    let (kernel, user) = text
        .split_once("changed facts of the userspace")
        .expect(&text);
    assert!(
        kernel.contains("changed facts") && kernel.contains("  none"),
        "{text}"
    );
    assert!(
        user.contains("userspace.usr_bin_entries") && user.contains("1200 -> 40"),
        "{text}"
    );
    let m = report::matrix(&[("host".into(), host.clone()), ("guest".into(), guest)]);
    assert!(!m.contains("pass*"), "{m}");
    // Negative control: a kernel fact that differs marks the cell.
    let m = report::matrix(&[
        ("host".into(), host),
        ("guest".into(), rep("6.12", vec![with(40, true)])),
    ]);
    assert!(m.contains("pass*"), "{m}");
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
