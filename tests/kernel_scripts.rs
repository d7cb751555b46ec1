//! The kernel developer's loop, without a kernel: `git bisect run`'s exit
//! statuses from a guest report (ci/kernel/verdict.py) and
//! ci/kernel-build.sh's refusal of a directory that is not a kernel tree.

use rstest::rstest;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn report(rows: &[(&str, &str, Option<&str>)]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(id, status, reason)| serde_json::json!({"id": id, "status": status, "reason": reason}))
        .collect();
    serde_json::json!({"schema": 1, "experiments": rows}).to_string()
}

const NOT_SET: Option<&str> = Some("not configured: CONFIG_USER_NS is not set");

#[rstest]
#[case::passed(&[("user.uid-map", "passed", None)], 0)]
#[case::docker_absent(&[("user.uid-map", "passed", None), ("docker.oom-killed", "ignored", Some("no engine"))], 0)]
#[case::failed(&[("user.uid-map", "failed", None)], 1)]
#[case::failed_beats_broken(&[("user.uid-map", "failed", None), ("pid.x", "broken", Some("e"))], 1)]
#[case::broken(&[("user.uid-map", "broken", Some("setup"))], 125)]
#[case::not_configured(&[("user.uid-map", "ignored", NOT_SET)], 125)]
#[case::kernel_too_old(&[("time.offsets", "ignored", Some("needs kernel >= 5.6 (this host runs 5.4)"))], 125)]
#[case::namespace_type_absent(&[("ns.lsns-types", "ignored", Some("this kernel is built without the [\"user\"] namespace"))], 125)]
#[case::no_boot(&[("kernel.boot", "broken", Some("the guest never reached its init"))], 125)]
fn bisect_verdict(#[case] rows: &[(&str, &str, Option<&str>)], #[case] code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::write(&path, report(rows)).unwrap();
    let out = Command::new("python3")
        .arg(format!("{ROOT}/ci/kernel/verdict.py"))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bisect_verdict_of_an_unreadable_report_is_cannot_tell() {
    let out = Command::new("python3")
        .arg(format!("{ROOT}/ci/kernel/verdict.py"))
        .arg("/nonexistent/report.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn kernel_build_refuses_a_directory_that_is_not_a_kernel_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(format!("{ROOT}/ci/kernel-build.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a kernel source tree"), "{err}");
}
