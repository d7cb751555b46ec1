//! The result formats: KTAP against a parser that follows the kernel's
//! ktap.rst (and its documented examples), JUnit parsed back as XML, the
//! GitHub Actions summary and annotations, `--fail-on-ignored`, and the HTML
//! matrix rendered in a real headless Chromium.

#[path = "support/ktap.rs"]
mod ktap_parser;

use assert_cmd::Command;
use isocheck::formats::{github, html, junit, ktap};
use isocheck::report::{ControlOutcome, ExperimentResult, Status};
use ktap_parser::{check_rules, parse};
use rstest::rstest;
use serde_json::json;
use std::collections::BTreeMap;

fn row(id: &str, section: &str, status: Status, reason: Option<&str>) -> ExperimentResult {
    let mut observations = BTreeMap::new();
    if status == Status::Passed || status == Status::Failed {
        observations.insert("value".to_string(), json!(1));
    }
    ExperimentResult {
        id: id.into(),
        section: section.into(),
        status,
        reason: reason.map(str::to_string),
        control: (status == Status::Passed).then_some(ControlOutcome::FailedAsExpected),
        observations,
        measurements: BTreeMap::new(),
        duration_ms: 12,
        anchors: Vec::new(),
        cves: Vec::new(),
    }
}

/// One row of each status over three sections, with reasons that carry the
/// characters each format must escape.
fn sample() -> Vec<ExperimentResult> {
    vec![
        row("pid.init-is-pid-1", "pid", Status::Passed, None),
        row(
            "pid.ps-sees-only-namespace",
            "pid",
            Status::Failed,
            Some("pids `ps -e` lists inside: got [1, 2], expected [1]\nsecond line # with hash"),
        ),
        row(
            "net.veth-pair",
            "net",
            Status::Ignored,
            Some("needs root: run with sudo"),
        ),
        row(
            "net.nat-masquerade",
            "net",
            Status::Broken,
            Some("ip link add: <RTNETLINK> answers \"File exists\" & more"),
        ),
        row(
            "docker.seccomp-unconfined",
            "docker",
            Status::Ignored,
            Some("no engine"),
        ),
        row(
            "docker.pid-ns",
            "docker",
            Status::Ignored,
            Some("no engine"),
        ),
    ]
}

// ---- KTAP: the parser against the specification's own examples ----

const SPEC_NESTED: &str = "KTAP version 1
1..1
  KTAP version 1
  1..2
  ok 1 test_1
  not ok 2 test_2
# example failed
not ok 1 example
";

const SPEC_MULTI_LEVEL: &str = "KTAP version 1
1..2
  KTAP version 1
  1..2
    KTAP version 1
    1..2
    not ok 1 test_1
    ok 2 test_2
  not ok 1 test_3
  ok 2 test_4 # SKIP
not ok 1 example_test_1
ok 2 example_test_2
";

const SPEC_FULL: &str = "KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
";

#[test]
fn parser_reads_the_specifications_full_example_as_documented() {
    let s = parse(SPEC_FULL).expect("the spec's example parses");
    assert_eq!(check_rules(&s), Vec::<String>::new());
    let main = &s.tests[0];
    assert_eq!((main.name.as_str(), main.ok), ("main_test", false));
    let subs = &main.subtests.as_ref().unwrap().tests;
    let names: Vec<_> = subs.iter().map(|t| (t.name.as_str(), t.ok)).collect();
    assert_eq!(
        names,
        [
            ("example_test_1", true),
            ("example_test_2", true),
            ("example_test_3", false)
        ]
    );
    let t1 = &subs[0].subtests.as_ref().unwrap().tests[0];
    assert_eq!(t1.notes, ["test_1: initializing test_1"]);
    let skipped = &subs[1].subtests.as_ref().unwrap().tests[0];
    assert_eq!(skipped.directive.as_deref(), Some("SKIP"));
    assert_eq!(skipped.diagnostic, "test_1 skipped");
    let failed = &subs[2].subtests.as_ref().unwrap().tests[1];
    assert_eq!(
        (failed.ok, failed.notes.clone()),
        (false, vec!["test_2: FAIL".to_string()])
    );
}

#[rstest]
#[case::nested(SPEC_NESTED, 1)]
#[case::multi_level(SPEC_MULTI_LEVEL, 2)]
#[case::full(SPEC_FULL, 1)]
fn parser_accepts_the_specifications_examples(#[case] text: &str, #[case] top: usize) {
    let s = parse(text).unwrap();
    assert_eq!((s.plan, s.tests.len()), (Some(top), top));
    assert_eq!(check_rules(&s), Vec::<String>::new());
}

#[rstest]
#[case("ok 1 test_case_name", true, "test_case_name", None, "")]
#[case("not ok 1 test_case_name", false, "test_case_name", None, "")]
#[case(
    "ok 1 test # SKIP necessary dependency unavailable",
    true,
    "test",
    Some("SKIP"),
    "necessary dependency unavailable"
)]
#[case(
    "not ok 1 test # TIMEOUT 30 seconds",
    false,
    "test",
    Some("TIMEOUT"),
    "30 seconds"
)]
#[case(
    "ok 5 check return code # rcode=0",
    true,
    "check return code",
    None,
    "rcode=0"
)]
fn parser_reads_the_specifications_result_lines(
    #[case] line: &str,
    #[case] ok: bool,
    #[case] name: &str,
    #[case] directive: Option<&str>,
    #[case] diagnostic: &str,
) {
    let t = ktap_parser::result(line).unwrap().unwrap();
    assert_eq!((t.ok, t.name.as_str()), (ok, name));
    assert_eq!(
        (t.directive.as_deref(), t.diagnostic.as_str()),
        (directive, diagnostic)
    );
}

/// The parser must be able to say no, or passing it proves nothing.
#[rstest]
#[case::no_version("1..1\nok 1 a\n")]
#[case::plan_mismatch("KTAP version 1\n1..2\nok 1 a\n")]
#[case::numbering("KTAP version 1\n1..2\nok 1 a\nok 3 b\n")]
#[case::subtest_without_result("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\n")]
#[case::second_document("KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n")]
fn parser_rejects_malformed_ktap(#[case] text: &str) {
    assert!(parse(text).is_err(), "accepted: {text}");
}

#[test]
fn rules_catch_a_parent_that_hides_a_failed_subtest() {
    let text = SPEC_NESTED.replace("not ok 1 example", "ok 1 example");
    assert_eq!(check_rules(&parse(&text).unwrap()).len(), 1);
}

// ---- KTAP: what isocheck writes ----

#[test]
fn ktap_output_is_one_subtest_per_section() {
    let text = ktap::render(&sample());
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(check_rules(&s), Vec::<String>::new(), "{text}");
    assert_eq!(s.version, "KTAP version 1");
    let sections: Vec<_> = s
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.ok, t.directive.clone()))
        .collect();
    assert_eq!(
        sections,
        [
            ("pid", false, None),
            ("net", false, None),
            ("docker", true, Some("SKIP".into()))
        ]
    );
    let pid = &s.tests[0].subtests.as_ref().unwrap().tests;
    assert!(pid[0].ok && pid[0].directive.is_none());
    assert!(!pid[1].ok);
    assert_eq!(
        pid[1].notes[0],
        "pid.ps-sees-only-namespace: pids `ps -e` lists inside: got [1, 2], expected [1]"
    );
    assert_eq!(
        pid[1].notes.len(),
        2,
        "each reason line is a diagnostic line"
    );
    let net = &s.tests[1].subtests.as_ref().unwrap().tests;
    assert_eq!(
        (net[0].ok, net[0].directive.as_deref()),
        (true, Some("SKIP"))
    );
    assert_eq!(net[0].diagnostic, "needs root: run with sudo");
    assert_eq!(
        (net[1].ok, net[1].directive.as_deref()),
        (false, Some("ERROR"))
    );
}

// ---- JUnit ----

#[derive(Debug, Default)]
struct Case {
    name: String,
    classname: String,
    outcome: Option<(String, String)>,
}

fn attributes(e: &quick_xml::events::BytesStart) -> BTreeMap<String, String> {
    e.attributes()
        .map(|a| {
            let a = a.unwrap();
            (
                a.key.into_inner().to_string(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned(),
            )
        })
        .collect()
}

/// Where the JUnit schema puts each element.
fn junit_parent_ok(name: &str, parent: &str) -> bool {
    match name {
        "testsuites" => parent.is_empty(),
        "testsuite" => parent == "testsuites",
        "properties" | "testcase" => parent == "testsuite",
        "property" => parent == "properties",
        "skipped" | "failure" | "error" | "system-out" => parent == "testcase",
        _ => false,
    }
}

/// Parses JUnit back with a real XML parser (malformed XML is an error) and
/// checks each element sits where the JUnit schema puts it.
fn parse_junit(xml: &str) -> (BTreeMap<String, String>, Vec<Case>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let (mut stack, mut cases, mut top) =
        (Vec::<String>::new(), Vec::<Case>::new(), BTreeMap::new());
    loop {
        let ev = r
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{xml}"));
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(_) => {
                stack.pop();
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        let Some(e) = start else { continue };
        let name = e.name().into_inner().to_string();
        let attrs = attributes(&e);
        let parent = stack.last().cloned().unwrap_or_default();
        assert!(
            junit_parent_ok(&name, &parent),
            "<{name}> inside <{parent}>"
        );
        match name.as_str() {
            "testsuites" => top = attrs.clone(),
            "testcase" => cases.push(Case {
                name: attrs["name"].clone(),
                classname: attrs["classname"].clone(),
                outcome: None,
            }),
            "skipped" | "failure" | "error" => {
                let c = cases.last_mut().unwrap();
                assert!(c.outcome.is_none(), "two outcomes in {}", c.name);
                c.outcome = Some((name.clone(), attrs["message"].clone()));
            }
            _ => {}
        }
        if !empty {
            stack.push(name);
        }
    }
    (top, cases)
}

#[test]
fn junit_lists_every_row_with_skips_failures_and_errors() {
    let xml = junit::render(&sample(), "6.1.0-28-cloud-amd64");
    let (top, cases) = parse_junit(&xml);
    assert_eq!(
        [
            &top["tests"],
            &top["failures"],
            &top["errors"],
            &top["skipped"]
        ],
        ["6", "1", "1", "3"]
    );
    assert_eq!(cases.len(), 6);
    let by: BTreeMap<_, _> = cases.iter().map(|c| (c.name.as_str(), c)).collect();
    assert_eq!(by["pid.init-is-pid-1"].outcome, None);
    assert_eq!(by["pid.init-is-pid-1"].classname, "pid");
    assert_eq!(
        by["net.veth-pair"].outcome,
        Some(("skipped".into(), "needs root: run with sudo".into()))
    );
    assert_eq!(
        by["pid.ps-sees-only-namespace"].outcome,
        Some((
            "failure".into(),
            "pids `ps -e` lists inside: got [1, 2], expected [1]".into()
        ))
    );
    assert_eq!(
        by["net.nat-masquerade"].outcome,
        Some((
            "error".into(),
            "ip link add: <RTNETLINK> answers \"File exists\" & more".into()
        ))
    );
}

#[test]
fn junit_check_rejects_malformed_xml() {
    let bad = junit::render(&sample(), "k").replace("</testsuite>", "");
    assert!(std::panic::catch_unwind(|| parse_junit(&bad)).is_err());
}

// ---- GitHub Actions ----

#[test]
fn github_summary_counts_and_lists_reasons() {
    let md = github::summary(&sample(), "6.18");
    assert!(md.contains("| 1 | 1 | 3 | 1 |"), "{md}");
    assert!(md.contains("#### Failed"), "{md}");
    assert!(md.contains("| `net.nat-masquerade` | ip link add"), "{md}");
    // A newline or pipe in a reason must not break the table.
    let failed_row = md
        .lines()
        .find(|l| l.contains("pid.ps-sees-only-namespace"))
        .unwrap();
    assert!(failed_row.ends_with("with hash |"), "{failed_row}");
}

#[test]
fn github_annotations_are_single_line_workflow_commands() {
    let a = github::annotations(&sample());
    assert_eq!(a.len(), 2);
    assert!(a[0].starts_with("::error title=isocheck failed pid.ps-sees-only-namespace::pids"));
    assert!(a[0].contains("%0Asecond line"), "{}", a[0]);
    assert!(a.iter().all(|l| !l.contains('\n')));
}

fn isocheck() -> Command {
    Command::cargo_bin("isocheck").expect("the isocheck binary")
}

/// As an unprivileged user every root-needing row is ignored: the run exits
/// 0 unless `--fail-on-ignored`, and `--allow-ignored` lets chosen ones pass.
#[test]
fn fail_on_ignored_turns_lost_coverage_into_exit_1() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to drop to uid 65534 with setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("isocheck");
    let run = |extra: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", "--filter", "pid.init-is-pid-1", "--skip", "docker."])
            .args(extra)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("HOME", dir.path());
        c.output().unwrap()
    };
    assert_eq!(run(&[]).status.code(), Some(0));
    let strict = run(&["--fail-on-ignored"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stdout)
        .contains("--fail-on-ignored: pid.init-is-pid-1 ignored"));
    assert_eq!(
        run(&["--fail-on-ignored", "--allow-ignored", "pid."])
            .status
            .code(),
        Some(0)
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(
        md.lines().filter(|l| l.starts_with("### ")).count(),
        3,
        "one summary per run:\n{md}"
    );
    assert!(md.contains("`pid.init-is-pid-1` | needs root"), "{md}");
}

#[test]
fn skip_with_an_unknown_prefix_is_a_usage_error() {
    isocheck()
        .args(["run", "--skip", "dokcer."])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--skip: no experiment id starts with \"dokcer.\"",
        ));
}

// ---- HTML ----

const KERNELS: [&str; 6] = [
    "5.10.0-32",
    "6.1.0-28",
    "6.12.12",
    "6.18.44",
    "6.19.1",
    "7.2.0",
];

/// Six reports over the whole registry: column 3 fails one row with a
/// changed fact, column 5 has a `measurements` map and ignores the docker rows.
fn html_columns() -> Vec<html::Column> {
    let all = isocheck::experiments::all();
    KERNELS
        .iter()
        .enumerate()
        .map(|(c, k)| {
            let exps: Vec<_> = all
                .iter()
                .map(|e| {
                    let mut v = json!({"id": e.id, "section": e.section.key(), "status": "passed",
                        "reason": null, "control": "failed-as-expected",
                        "observations": {"echo_dollar_dollar": "1", "wait_ms": 10, "nested": {"a": "x"}},
                        "duration_ms": 10});
                    if c == 2 && e.id == "pid.init-is-pid-1" {
                        v["status"] = json!("failed");
                        v["reason"] = json!("`echo $$` inside: got \"4242\", expected \"1\" </script>");
                        v["observations"]["echo_dollar_dollar"] = json!("4242");
                        // A time is not a fact (`report::stable`): no change.
                        v["observations"]["wait_ms"] = json!(99);
                    }
                    if c == 4 {
                        v["measurements"] = json!({"wall_ms": 77});
                        if e.id.starts_with("docker.") {
                            v["status"] = json!("ignored");
                            v["reason"] = json!("no engine");
                        }
                    }
                    v
                })
                .collect();
            let layout = if c % 2 == 0 { "unified" } else { "hybrid" };
            html::Column {
                label: format!("{k} {layout}"),
                report: json!({"schema": 1, "host": {"kernel": k, "cgroup": {"layout": layout},
                    "docker": (c != 4).then_some("20.10.24")}, "experiments": exps}),
            }
        })
        .collect()
}

#[test]
fn html_page_is_self_contained() {
    let page = html::render(&isocheck::experiments::all(), &html_columns());
    for needle in ["http://", "https://", "src=", "@import", "url("] {
        assert!(
            !page.contains(needle),
            "the page refers to something outside: {needle}"
        );
    }
    // The reason's `</script>` is inside the JSON block: it must not end it.
    assert_eq!(page.matches("</script>").count(), 2);
}

fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|c| isocheck::host::which(c))
}

fn headless(url: &str, profile: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let bin = chromium().unwrap();
    std::fs::create_dir_all(profile).expect("chromium profile dir");
    let mut c = std::process::Command::new("timeout");
    c.arg("120").arg(bin).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]);
    // Chromium writes ~/.cache and ~/.config; under `sudo -E` HOME is the
    // user's, and root-owned directories there would break their next steps.
    c.env("HOME", profile)
        .env("XDG_CONFIG_HOME", profile.join("config"))
        .env("XDG_CACHE_HOME", profile.join("cache"));
    c.arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    c.output().expect("run chromium")
}

/// The details pane of the deep-linked failed cell: its reason, its
/// control, the changed fact against the baseline; an unchanged fact is not
/// listed.
fn check_failed_cell_details(dom: &str) {
    let details = &dom[dom.find("<aside id=\"details\"").unwrap()..];
    let details = &details[..details.find("</aside>").unwrap()];
    assert!(!details.contains(" hidden"), "details stay hidden");
    assert!(details.contains("data-status=\"failed\""), "{details}");
    assert!(details.contains("got \"4242\""), "{details}");
    assert!(details.contains("control: failed-as-expected"), "{details}");
    assert!(
        details.contains("facts changed against 6.18.44 hybrid"),
        "{details}"
    );
    assert!(
        details.contains("<td>echo_dollar_dollar</td><td>\"1\"</td><td>\"4242\"</td>"),
        "{details}"
    );
    assert!(
        !details.contains("<td>pid_inside</td><td>1</td>"),
        "{details}"
    );
    assert!(dom.contains("<td>wall_ms</td>") || !details.contains("measurements"));
}

/// Renders the page in headless Chromium with a deep link to the failed
/// cell and checks the DOM the page's script built: row and column counts,
/// the failed cell's details (reason, control, the changed fact against the
/// baseline, measurements shown apart), then saves a screenshot.
#[test]
fn html_matrix_renders_in_headless_chromium() {
    if chromium().is_none() {
        eprintln!("skipped: no chromium on PATH (apt-get install -y chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("matrix.html");
    std::fs::write(
        &page,
        html::render(&isocheck::experiments::all(), &html_columns()),
    )
    .unwrap();
    let url = format!("file://{}#cell=pid.init-is-pid-1@2&base=3", page.display());
    let out = headless(&url, &dir.path().join("profile"), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script did not finish:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = isocheck::experiments::all().len();
    assert!(dom.contains(&format!("data-rows=\"{n}\"")), "rows");
    assert!(dom.contains("data-cols=\"6\""), "columns");
    assert_eq!(dom.matches("<td class=\"cell").count(), n * 6);
    check_failed_cell_details(&dom);
    // Only the failed cell differs in a fact; column 4's `measurements`
    // differ from every other column but are never compared.
    assert!(dom.contains("data-changed=\"1\""), "changed cells");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("isocheck-matrix.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(
        &url,
        &dir.path().join("profile2"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
    );
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    isocheck::owner::hand_over(&shot);
    eprintln!("screenshot: {}", shot.display());
}

/// End to end: the binary's own KTAP on stdout parses, and its JUnit file
/// holds the same rows (run as whoever runs the tests: as root the row runs,
/// otherwise it is ignored, and both must come out well-formed).
#[test]
fn cli_writes_ktap_to_stdout_and_junit_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let out = isocheck()
        .args([
            "run",
            "--filter",
            "pid.nspid-translation",
            "--skip",
            "docker.",
        ])
        .args(["--ktap", "-", "--junit"])
        .arg(&xml)
        .env("HOME", dir.path())
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    let ktap = String::from_utf8_lossy(&out.stdout);
    let s = parse(&ktap).unwrap_or_else(|e| panic!("{e}:\n{ktap}"));
    let pid = &s.tests[0].subtests.as_ref().unwrap().tests;
    assert_eq!(pid.len(), 1);
    assert_eq!(pid[0].name, "pid.nspid-translation");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pid.nspid-translation"),
        "the table goes to stderr"
    );
    let (top, cases) = parse_junit(&std::fs::read_to_string(&xml).unwrap());
    assert_eq!((top["tests"].as_str(), cases.len()), ("1", 1));
}
