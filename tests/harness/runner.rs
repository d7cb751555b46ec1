//! The runner's honesty (controls, leaks, broken vs failed), a section's
//! fixture, and bounded runs.

use super::*;

// ---- the runner's honesty ----

fn always_passes(ctx: &mut Ctx, _v: Variant) -> Outcome {
    ctx.observe("value", 1);
    Ok(())
}
fn breaks(_ctx: &mut Ctx, _v: Variant) -> Outcome {
    Err(Problem::Broken("setup went wrong".into()))
}
fn fails_only_in_control(ctx: &mut Ctx, v: Variant) -> Outcome {
    ctx.observe("value", 1);
    if v.isolated() {
        Ok(())
    } else {
        Err(Problem::Fail("no isolation, no effect".into()))
    }
}
fn asserts_nothing(_ctx: &mut Ctx, _v: Variant) -> Outcome {
    Ok(())
}
/// The control fails its assertion, but leaves a `sleep` behind: the leak,
/// not the assertion, decides.
fn control_fails_and_leaks(ctx: &mut Ctx, v: Variant) -> Outcome {
    ctx.observe("value", 1);
    if v.isolated() {
        return Ok(());
    }
    let child = ctx.cmd("sleep").arg("60").spawn()?;
    std::mem::forget(child);
    Err(Problem::Fail("no isolation, no effect".into()))
}
fn control_setup_breaks(ctx: &mut Ctx, v: Variant) -> Outcome {
    ctx.observe("value", 1);
    if v.isolated() {
        Ok(())
    } else {
        Err(Problem::Broken("unshare: setup step failed".into()))
    }
}
/// A host guard (as the net section's) sees the host change in the control run.
fn control_sees_host_change(ctx: &mut Ctx, v: Variant) -> Outcome {
    ctx.observe("value", 1);
    if v.isolated() {
        Ok(())
    } else {
        Err(Problem::HostState("the real host's routes changed".into()))
    }
}
/// Only a guard's bookkeeping, as the net section's host check records it.
fn only_guard_bookkeeping(ctx: &mut Ctx, _v: Variant) -> Outcome {
    ctx.observe_guard("host_net_check", "deferred");
    Ok(())
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
    let e = Experiment::new(id, body).asserts("test").needs(needs);
    match control {
        Some(c) => e.control(c),
        None => e,
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
#[case::control_leak_is_broken(
    control_fails_and_leaks,
    Some("no isolation"),
    Status::Broken,
    None,
    "left behind"
)]
#[case::control_setup_break_is_broken(
    control_setup_breaks,
    Some("no isolation"),
    Status::Broken,
    None,
    "setup step failed"
)]
#[case::control_host_change_is_broken(
    control_sees_host_change,
    Some("no isolation"),
    Status::Broken,
    None,
    "routes changed"
)]
#[case::pass_without_observations_is_broken(
    asserts_nothing,
    None,
    Status::Broken,
    None,
    "asserted nothing"
)]
#[case::guard_bookkeeping_is_not_an_observation(
    only_guard_bookkeeping,
    None,
    Status::Broken,
    None,
    "asserted nothing"
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
    let exp = Box::leak(Box::new(fake("pid.test-fake", body, control, &[])));
    let r = run_one(exp);
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.control, ctl, "{r:?}");
    if ctl == Some(ControlOutcome::FailedAsExpected) {
        // The report names the assertion the control failed.
        assert_eq!(
            r.observations.get("control_failure"),
            Some(&serde_json::json!("no isolation, no effect")),
            "{r:?}"
        );
    }
    if status != Status::Passed {
        let why = r.reason.clone().expect("a non-pass names its reason");
        assert!(why.contains(reason), "{why:?} should mention {reason:?}");
    }
    // Teardown ran and the leak was removed: nothing of the tag remains.
    let left = isocheck::cleanup::leaks(&isocheck::cleanup::run_tag());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[serial(run_tag)]
fn unmet_needs_are_ignored_with_the_reason_never_passed() {
    let exp = Box::leak(Box::new(fake(
        "pid.test-unmet",
        always_passes,
        None,
        &[Need::Kernel(999, 0)],
    )));
    let r = run_one(exp);
    assert_eq!(r.status, Status::Ignored);
    assert!(r.reason.unwrap().contains("kernel >= 999.0"));
}

// ---- a section's fixture, as the runner applies it ----

fn records_setup(ctx: &mut Ctx) -> Outcome {
    ctx.observe_guard("fixture_setup", true);
    Ok(())
}
fn refuses_setup(_ctx: &mut Ctx) -> Outcome {
    Err(Problem::Broken("fixture setup refused".into()))
}
fn records_teardown(ctx: &mut Ctx, r: Outcome) -> Outcome {
    ctx.observe_guard("fixture_teardown", format!("{r:?}"));
    r
}
fn host_changed(ctx: &mut Ctx, _r: Outcome) -> Outcome {
    ctx.observe_guard("fixture_teardown", "host changed");
    Err(Problem::HostState("the host changed".into()))
}
static RECORDS: Fixture = Fixture {
    setup: records_setup,
    teardown: records_teardown,
};
static CHANGES_HOST: Fixture = Fixture {
    setup: records_setup,
    teardown: host_changed,
};
static REFUSES: Fixture = Fixture {
    setup: refuses_setup,
    teardown: records_teardown,
};

/// The fixture's teardown sees every outcome (a panic included) and may
/// overrule a pass; a refused setup skips the body and the teardown.
#[rstest]
#[case::teardown_after_a_pass(&RECORDS, always_passes, Status::Passed, "", true)]
#[case::teardown_after_a_panic(&RECORDS, panics, Status::Broken, "panicked", true)]
#[case::teardown_overrules_a_pass(&CHANGES_HOST, always_passes, Status::Failed, "host changed", true)]
#[case::refused_setup_breaks(&REFUSES, always_passes, Status::Broken, "setup refused", false)]
#[serial(run_tag)]
fn the_runner_wraps_each_body_in_its_sections_fixture(
    #[case] fixture: &'static Fixture,
    #[case] body: isocheck::experiment::Body,
    #[case] status: Status,
    #[case] reason: &str,
    #[case] torn_down: bool,
) {
    let mut exp = fake("pid.test-fixture", body, None, &[]);
    exp.fixture = Some(fixture);
    let r = run_one(Box::leak(Box::new(exp)));
    assert_eq!(r.status, status, "{r:?}");
    assert!(
        r.reason.clone().unwrap_or_default().contains(reason),
        "{r:?}"
    );
    assert_eq!(
        r.measurements.contains_key("fixture_teardown"),
        torn_down,
        "{r:?}"
    );
}

fn net_steps_asserting_nothing(_ctx: &mut Ctx, _v: Variant) -> Outcome {
    Ok(())
}

/// The net section's real guard, both when it defers the host comparison
/// (another net row holds the span open) and when it closes the span: what
/// it records never makes a row that asserted nothing pass.
#[rstest]
#[case::deferring(true)]
#[case::closing(false)]
#[serial(run_tag)]
fn the_net_guards_records_do_not_count_as_asserting(#[case] span_held_open: bool) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    if span_held_open {
        isocheck::netns::host_span_enter().unwrap();
    }
    let mut exp = fake("net.fake", net_steps_asserting_nothing, None, &[]);
    exp.fixture = Some(&isocheck::experiments::net::HOST_GUARD);
    let exp = Box::leak(Box::new(exp));
    let r = run_one(exp);
    if span_held_open {
        let _ = isocheck::netns::host_span_leave();
    }
    let guard_key = if span_held_open {
        "host_net_check"
    } else {
        "host_net_unchanged"
    };
    assert!(r.measurements.contains_key(guard_key), "{r:?}");
    assert!(r.observations.is_empty(), "{r:?}");
    assert_eq!(r.status, Status::Broken, "{r:?}");
    assert!(r.reason.unwrap().contains("asserted nothing"));
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

// ---- bounded runs ----

fn sleeps_in_a_child(ctx: &mut Ctx, _v: Variant) -> Outcome {
    ctx.scratch()?;
    // Blocks until the child ends: only the runner's kill ends it early.
    ctx.cmd("sleep").arg("60").status()?;
    Ok(())
}
fn sleeps_itself(ctx: &mut Ctx, _v: Variant) -> Outcome {
    ctx.scratch()?;
    std::thread::sleep(std::time::Duration::from_secs(60));
    Ok(())
}

#[rstest]
#[case::blocked_on_a_child(sleeps_in_a_child)]
#[case::stuck_in_its_own_code(sleeps_itself)]
#[serial(run_tag)]
fn an_experiment_past_its_limit_is_broken_in_time_and_leaves_nothing(
    #[case] body: isocheck::experiment::Body,
) {
    let exp = Box::leak(Box::new(fake("pid.test-slow", body, None, &[])));
    let limit = std::time::Duration::from_secs(1);
    isocheck::runner::set_time_limit(Some(limit));
    let start = std::time::Instant::now();
    let r = run_one(exp);
    let took = start.elapsed();
    isocheck::runner::set_time_limit(None);
    assert_eq!(r.status, Status::Broken, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("timed out after 1 s"));
    assert!(
        took < limit + std::time::Duration::from_secs(2),
        "took {took:?}"
    );
    let left = isocheck::cleanup::leaks(&isocheck::cleanup::run_tag());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_time_limit_comes_from_the_environment_or_the_default() {
    let exp = fake("pid.x", always_passes, None, &[]);
    assert_eq!(
        isocheck::runner::time_limit(&exp),
        isocheck::runner::DEFAULT_LIMIT
    );
    let docker = fake("docker.x", always_passes, None, &[]);
    assert!(isocheck::runner::time_limit(&docker) > isocheck::runner::DEFAULT_LIMIT);
}
