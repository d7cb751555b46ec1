//! The coverage map against its sources: fixtures/anchors.tsv (the one
//! source of every row's `.anchor`/`.cve`), fixtures/upstream-tests.tsv,
//! fixtures/uncovered.tsv and the generated docs/coverage.md. Each failure
//! names the fix.

use assert_cmd::Command;
use isocheck::coverage;
use std::collections::BTreeSet;

fn isocheck() -> Command {
    Command::cargo_bin("isocheck").expect("the isocheck binary")
}

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn stdout(args: &[&str]) -> String {
    let out = isocheck()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn coverage_page_is_generated_from_the_registry() {
    assert!(
        repo_file("docs/coverage.md") == stdout(&["list", "--coverage"]),
        "docs/coverage.md is stale: run ci/update-readme.sh"
    );
}

/// Every catalogue id has exactly one line, in catalogue order, with three
/// fields, so ci/apply-anchors.py never meets an entry it cannot place.
#[test]
fn anchors_file_has_every_catalogue_id_once() {
    let ids: Vec<&str> = coverage::anchors_file().iter().map(|l| l.id).collect();
    let catalogue = isocheck::experiments::catalogue_ids();
    let missing: Vec<&&str> = catalogue.iter().filter(|i| !ids.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "fixtures/anchors.tsv lacks {missing:?}: add a line per id (empty fields for none)"
    );
    assert_eq!(
        ids, catalogue,
        "fixtures/anchors.tsv: one line per catalogue id, in catalogue order"
    );
    for line in repo_file("fixtures/anchors.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        assert_eq!(
            line.split('\t').count(),
            3,
            "fixtures/anchors.tsv: id TAB anchors TAB cves: {line:?}"
        );
    }
    for l in coverage::anchors_file() {
        for c in &l.cves {
            let ok = c
                .strip_prefix("CVE-")
                .and_then(|r| r.split_once('-'))
                .is_some_and(|(y, n)| {
                    y.len() == 4
                        && n.len() >= 4
                        && (y.to_owned() + n).chars().all(|ch| ch.is_ascii_digit())
                });
            assert!(ok, "{}: {c:?} is not a CVE id", l.id);
        }
    }
}

/// The registry carries exactly what fixtures/anchors.tsv says, in its
/// order: the file is the source, the script writes it into the entries.
#[test]
fn registry_anchors_are_the_anchors_file() {
    let file = coverage::anchors_file();
    let mut stale = Vec::new();
    for e in isocheck::experiments::all() {
        let line = file.iter().find(|l| l.id == e.id).expect("checked above");
        if e.anchors.as_slice() != line.anchors.as_slice()
            || e.cves.as_slice() != line.cves.as_slice()
        {
            stale.push(e.id);
        }
    }
    assert!(
        stale.is_empty(),
        "the .anchor/.cve calls of {stale:?} differ from fixtures/anchors.tsv: run ci/apply-anchors.py"
    );
}

/// Every upstream test is followed by a row (built or pending) or explained
/// in fixtures/uncovered.tsv, never both, and an explanation names no row.
#[test]
fn every_upstream_test_is_followed_or_explained() {
    let tests = coverage::upstream();
    let why = coverage::uncovered();
    let followed: BTreeSet<&str> = coverage::anchors_file()
        .iter()
        .flat_map(|l| l.anchors.clone())
        .collect();
    let mut lost = Vec::new();
    for t in &tests {
        let explained = why.iter().any(|(a, _)| *a == t.anchor);
        if followed.contains(t.anchor) == explained {
            lost.push(t.anchor);
        }
    }
    assert!(
        lost.is_empty(),
        "followed by a row and listed in fixtures/uncovered.tsv, or neither: {lost:?}"
    );
    let registry = isocheck::experiments::catalogue_ids();
    for (anchor, reason) in &why {
        assert!(
            tests.iter().any(|t| t.anchor == *anchor),
            "fixtures/uncovered.tsv: {anchor:?} is not in fixtures/upstream-tests.tsv"
        );
        assert!(
            !reason.trim().is_empty(),
            "fixtures/uncovered.tsv: {anchor:?} has no reason"
        );
        let named: Vec<&&str> = registry.iter().filter(|id| reason.contains(**id)).collect();
        assert!(
            named.is_empty(),
            "fixtures/uncovered.tsv: {anchor:?} names {named:?}: a test a row covers is that \
             row's anchor in fixtures/anchors.tsv, not an uncovered entry"
        );
    }
}

/// The yardsticks: all 52 programs of LTP's runtest/containers are
/// in the map, and the rows guard at least 11 CVEs.
#[test]
fn the_map_holds_ltp_containers_and_eleven_cves() {
    let ltp = coverage::upstream()
        .into_iter()
        .filter(|t| t.source == "LTP runtest/containers")
        .count();
    assert_eq!(ltp, 52, "LTP runtest/containers has 52 programs");
    let cves: BTreeSet<&str> = coverage::anchors_file()
        .iter()
        .flat_map(|l| l.cves.clone())
        .collect();
    assert!(cves.len() >= 11, "{cves:?}");
}

/// `list --cve --report` reads a row's verdict and control from the report.
#[test]
fn list_cve_shows_a_reports_verdicts() {
    let dir = std::env::temp_dir().join(format!("isocheck-cov-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.json");
    let report = serde_json::json!({
        "schema": isocheck::report::SCHEMA,
        "host": {"kernel": "6.1.0-test", "cgroup": null, "docker": null},
        "experiments": [{"id": "esc.release-agent-denied", "section": "escape", "status": "passed",
            "reason": null, "control": "failed-as-expected", "observations": {}, "duration_ms": 1}]
    });
    std::fs::write(&path, report.to_string()).unwrap();
    let text = stdout(&["list", "--cve", "--report", path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let line = text
        .lines()
        .find(|l| l.starts_with("CVE-2022-0492"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("esc.release-agent-denied")
            && line.contains("passed (control failed-as-expected)"),
        "{line}"
    );
    assert!(text.contains("kernel 6.1.0-test"), "{text}");
}

/// The page shows a row's CVEs and anchors under its id.
#[test]
fn html_shows_anchors_under_the_id() {
    let page = isocheck::formats::html::render(&isocheck::experiments::all(), &[]);
    let row = page
        .split("<tr class=\"exp-row\" data-id=\"esc.release-agent-denied\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("the row");
    assert!(
        row.contains("<div class=\"refs\">CVE-2022-0492</div>"),
        "{row}"
    );
}

fn apply_anchors(root: &std::path::Path, check: bool) -> std::process::Output {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/apply-anchors.py");
    let mut c = std::process::Command::new("python3");
    c.arg(script).arg("--root").arg(root);
    if check {
        c.arg("--check");
    }
    c.output().expect("python3 runs ci/apply-anchors.py")
}

/// The script leaves this tree as it is: the calls sit where it puts them.
#[test]
fn apply_anchors_has_nothing_to_do_here() {
    let out = apply_anchors(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), true);
    assert!(
        out.status.success(),
        "run ci/apply-anchors.py: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// On a copy: calls land after `.asserts(..)` (or at the end of an entry
/// without one, however it is wrapped), old ones are replaced, a second run
/// changes nothing, and an entry without a tsv line is refused.
#[test]
fn apply_anchors_rewrites_entries_idempotently() {
    let dir = std::env::temp_dir().join(format!("isocheck-apply-{}", std::process::id()));
    let src = dir.join("src/experiments");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    let rs = src.join("a.rs");
    std::fs::write(
        &rs,
        "pub static EXPERIMENTS: &[Experiment] = &[\n    Experiment::new(\"pid.a\", a)\n        \
         .asserts(\"x, (y) ]\")\n        .cve(\"CVE-1999-0001\")\n        .anchor(\n            \"old\",\n        )\n        \
         .needs(needs![ROOT]), // a comment, with ]\n    Experiment::new(\n        \"pid.b\",\n        b,\n    )\n    \
         .control(r#\"raw \", ]\"#)\n];\n",
    )
    .unwrap();
    let tsv = dir.join("fixtures/anchors.tsv");
    std::fs::write(
        &tsv,
        "pid.a\tLTP x; LTP y\tCVE-2021-4197\npid.b\tLTP z\t\npid.c\t\t\n",
    )
    .unwrap();
    assert!(apply_anchors(&dir, false).status.success());
    let text = std::fs::read_to_string(&rs).unwrap();
    assert!(
        text.contains(".asserts(\"x, (y) ]\")\n        .anchor(\"LTP x\").anchor(\"LTP y\").cve(\"CVE-2021-4197\")\n        .needs("),
        "{text}"
    );
    assert!(
        text.contains(".control(r#\"raw \", ]\"#)\n    .anchor(\"LTP z\")\n];"),
        "{text}"
    );
    assert!(
        !text.contains("old") && !text.contains("CVE-1999"),
        "{text}"
    );
    assert!(
        apply_anchors(&dir, true).status.success(),
        "a second run has nothing to do"
    );
    std::fs::write(&tsv, "pid.a\t\t\n").unwrap();
    let refused = apply_anchors(&dir, false);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!refused.status.success(), "pid.b has no tsv line");
}
