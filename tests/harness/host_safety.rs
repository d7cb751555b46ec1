//! Destructive steps check where they are, the net host guard, closed pipes.

use super::*;

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

/// Every mount op of the deeper mount and escape rows refuses in the run's
/// own mount namespace before its first step (the paths are never reached).
#[test]
fn the_mount_api_ops_refuse_in_the_hosts_mount_namespace() {
    let ops: [&[&str]; 6] = [
        &["mnt-rro", "/nonexistent"],
        &["mnt-idmap", "/nonexistent/a", "/nonexistent/b"],
        &[
            "mnt-slave",
            "/nonexistent/a",
            "/nonexistent/b",
            "/nonexistent/c",
        ],
        &["mnt-remount-flags", "/nonexistent"],
        &["overlay-copyup", "/n/l", "/n/u", "/n/w", "/n/m", "f"],
        &["mount-gate", "/nonexistent", "/dev/null"],
    ];
    for op in ops {
        isocheck()
            .env(
                isocheck::helper::ENV_HOST_NS,
                isocheck::helper::host_ns_env(),
            )
            .arg("helper")
            .args(op)
            .assert()
            .code(125)
            .stderr(predicate::str::contains(
                "refusing: still in the host's mount namespace",
            ));
    }
}

// ---- the net section's host guard ----

fn ip(args: &[&str]) {
    let ok = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip {args:?}");
}

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
    ip(&["-n", &host, "link", "add", "veth1a2b3c4"]
        .into_iter()
        .chain(["type", "veth", "peer", "name", "veth4c3b2a1"])
        .collect::<Vec<_>>());
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
