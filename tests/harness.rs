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
        r.observations.contains_key("fixture_teardown"),
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

// ---- destructive steps check where they are ----

/// As on a kernel where unshare silently does nothing: the helper is still
/// in the run's network namespace, so it must refuse the sysctl write. (The
/// value written is the one the host has, so even a broken guard changes
/// nothing.)
#[test]
fn a_sysctl_meant_for_a_new_namespace_is_refused_in_the_hosts() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let key = "net/ipv4/ip_forward";
    let now = std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap();
    isocheck()
        .env(
            isocheck::helper::ENV_HOST_NS,
            isocheck::helper::host_ns_env(),
        )
        .args(["helper", "net-sysctl", key, now.trim()])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "refusing: still in the host's network namespace",
        ));
}

#[test]
fn an_unshare_that_did_nothing_is_refused_before_its_mounts() {
    // ISOCHECK_FAKE_UNSHARE skips the unshare(2) call, as a sandbox that
    // ignores it would. `--propagation unchanged` and no other option: were
    // the guard broken, the helper would exec `true` and change nothing.
    isocheck()
        .env(
            isocheck::helper::ENV_HOST_NS,
            isocheck::helper::host_ns_env(),
        )
        .env("ISOCHECK_FAKE_UNSHARE", "1")
        .args([
            "helper",
            "unshare",
            "--ns",
            "mnt,uts",
            "--propagation",
            "unchanged",
            "--",
            "true",
        ])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "refusing: still in the host's mount namespace",
        ));
}

// ---- the net section's host guard ----

/// The guard must see a link this run's experiment adds to the host, and
/// must not see a container's veth that another run's Docker adds meanwhile.
/// A stand-in namespace plays the host, so the real host never gets a link.
#[test]
#[serial(run_tag)]
#[file_serial(isocheck_host)]
fn the_host_guard_catches_a_link_the_run_adds_and_ignores_dockers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip {args:?}");
    };
    let host = format!("{}guard", isocheck::cleanup::run_tag());
    ip(&["netns", "add", &host]);
    // Removed however the asserts end.
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            isocheck::netns::guard_namespace(None);
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let _gone = Gone(host.clone());
    isocheck::netns::guard_namespace(Some(host.clone()));
    let docker = isocheck::netns::HostNetSnapshot::take()
        .unwrap()
        .parts
        .contains_key("dockerd");
    isocheck::netns::host_span_enter().unwrap();
    // (veth pairs: this kernel has no dummy links)
    ip(&[
        "-n",
        &host,
        "link",
        "add",
        "veth1a2b3c4",
        "type",
        "veth",
        "peer",
        "name",
        "veth4c3b2a1",
    ]);
    let only_docker = isocheck::netns::host_span_leave().unwrap().unwrap();
    isocheck::netns::host_span_enter().unwrap();
    ip(&[
        "-n", &host, "link", "add", "v-eth", "type", "veth", "peer", "name", "v-ethc",
    ]);
    let ours = isocheck::netns::host_span_leave().unwrap().unwrap();
    assert!(ours.iter().any(|l| l.contains("v-eth")), "{ours:?}");
    if docker {
        assert!(only_docker.is_empty(), "{only_docker:?}");
    } else {
        assert!(
            !only_docker.is_empty(),
            "without Docker, Docker-like names count"
        );
    }
}

// ---- pipes ----

#[test]
fn a_closed_stdout_ends_diff_quietly() {
    let many = |status| {
        let exps = (0..3000)
            .map(|i| result(&format!("pid.x{i}"), status, json!({})))
            .collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), serde_json::to_string(&rep("6.1", exps)).unwrap()).unwrap();
        f
    };
    let (a, b) = (many(Status::Passed), many(Status::Failed));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("isocheck"))
        .args(["diff"])
        .arg(a.path())
        .arg(b.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}

// ---- the sweeper (host-global state: one at a time, across processes) ----

#[test]
#[file_serial(isocheck_host)]
// Its live directory carries this process's run tag (see below).
#[serial(run_tag)]
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

/// A POSIX message queue made on the host, as the ipc section makes one.
fn host_mqueue(name: &str) {
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
    // SAFETY: a NUL-terminated name; default attributes.
    let fd = unsafe { libc::mq_open(c.as_ptr(), flags, 0o600, std::ptr::null::<libc::mq_attr>()) };
    assert!(fd >= 0, "mq_open: {}", std::io::Error::last_os_error());
    // SAFETY: closes the descriptor just opened.
    unsafe { libc::mq_close(fd) };
}

fn mqueue_exists(name: &str) -> bool {
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    // SAFETY: a NUL-terminated name, closed at once.
    let fd = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
    if fd >= 0 {
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::mq_close(fd) };
    }
    fd >= 0
}

fn shm_key_exists(key: u32) -> bool {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    isocheck::cleanup::suite_shm_ids(&text)
        .iter()
        .any(|(_, k)| *k == key)
}

/// What a SIGKILLed ipc.sysv-isolated leaves: a SysV segment (found by its
/// key family and the tag written in it) and a POSIX message queue (by
/// name). A dead run's are swept, a live run's are kept and its leak check
/// sees them.
#[test]
#[file_serial(isocheck_host)]
// Its live objects carry this process's run tag, which the runner tests
// check is clean after each of them.
#[serial(run_tag)]
fn ipc_objects_of_a_dead_run_are_swept_and_a_live_runs_are_not() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    use isocheck::cleanup::{create_tagged_shm, leaks, run_tag, sweep_dead_runs, Leftover};
    let low = std::process::id() & 0xffff;
    let (dead_key, live_key) = (0x16fe_0000 | low, 0x16fd_0000 | low);
    let dead = "isoc-dead2-1";
    let live = format!("{}9", run_tag());
    create_tagged_shm(dead_key, dead).unwrap();
    create_tagged_shm(live_key, &live).unwrap();
    host_mqueue(&format!("{dead}-inside"));
    host_mqueue(&live);
    let mine = leaks(&run_tag());
    assert!(
        mine.iter()
            .any(|l| matches!(l, Leftover::Shm { key, .. } if *key == live_key)),
        "{mine:?}"
    );
    assert!(mine.contains(&Leftover::Mqueue(live.clone())), "{mine:?}");
    let removed = sweep_dead_runs();
    assert!(
        removed
            .iter()
            .any(|l| matches!(l, Leftover::Shm { tag, .. } if tag == dead)),
        "{removed:?}"
    );
    assert!(removed.contains(&Leftover::Mqueue(format!("{dead}-inside"))));
    assert!(!shm_key_exists(dead_key) && !mqueue_exists(&format!("{dead}-inside")));
    assert!(
        shm_key_exists(live_key) && mqueue_exists(&live),
        "a live run's ipc object was swept"
    );
    assert!(isocheck::cleanup::remove(mine).is_empty());
    assert!(!shm_key_exists(live_key) && !mqueue_exists(&live));
}

/// Another run's lock, held: its file survives a sweep (and its resources
/// with it); released, both go.
#[test]
#[file_serial(isocheck_host)]
fn a_held_run_lock_keeps_its_run_alive_through_a_sweep() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _ = isocheck::cleanup::run_id(); // this process's own lock first
    let lock_path = std::path::Path::new("/run/isocheck/beef01.lock");
    let lock = std::fs::File::create(lock_path).unwrap();
    assert!(isocheck::cleanup::flock(
        &lock,
        libc::LOCK_EX | libc::LOCK_NB
    ));
    let dir = isocheck::cleanup::scratch_root().join("isoc-beef01-1-x");
    std::fs::create_dir_all(&dir).unwrap();
    isocheck::cleanup::sweep_dead_runs();
    let (file_kept, dir_kept) = (lock_path.exists(), dir.exists());
    drop(lock);
    isocheck::cleanup::sweep_dead_runs();
    let (file_gone, dir_gone) = (!lock_path.exists(), !dir.exists());
    let _ = std::fs::remove_dir(&dir);
    assert!(
        file_kept && dir_kept,
        "a live run's lock or scratch dir was swept"
    );
    assert!(
        file_gone && dir_gone,
        "a dead run's lock or scratch dir stayed"
    );
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
        interrupted: false,
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
