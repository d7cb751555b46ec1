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

/// What a faked namespace must not change: the run's own mount table (less
/// /run/netns, which `ip netns add` mounts on the host by design) and names.
fn own_namespace_state() -> (Vec<String>, String, String) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| !l.split(' ').nth(4).unwrap_or("").starts_with("/run/netns"))
        .map(str::to_string)
        .collect();
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    (
        mounts,
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/domainname"),
    )
}

const FAKED_ROWS: [&str; 32] = [
    "pid.init-is-pid-1",
    "pid.ps-sees-only-namespace",
    "pid.nsenter-joins",
    "net.new-ns-only-lo-down",
    "net.lo-ping-fails-before-up",
    "mnt.proc-view-differs",
    "mnt.findmnt-sees-own-table",
    "mnt.bind-mount-invisible-to-host",
    "mnt.rootfs-pivot",
    "uts.hostname-isolated",
    "ipc.sysv-isolated",
    "user.uid-map",
    "cgroupns.root-view",
    "time.offsets",
    "esc.locked-mounts",
    "esc.setns-out-denied",
    "pid.nesting-limits",
    "mnt.propagation-slave-unbindable",
    "mnt.recursive-readonly",
    "mnt.idmapped-mount",
    "mnt.proc-subset-pid",
    "user.setgroups-deny",
    "user.nested-map-ranges",
    "user.caps-scoped-to-own-netns",
    "user.file-caps-namespaced",
    "user.unprivileged-userns-policy",
    "ns.unshare-needs-cap",
    "ns.ioctl-hierarchy",
    "ns.pidfd-setns",
    "esc.mount-flags-locked",
    "esc.overlay-copyup-unmapped",
    "esc.userns-mount-gate",
];

/// As under a sandbox whose seccomp filter makes unshare(2) and setns(2)
/// return 0 without doing anything: rows of every namespace section run,
/// none passes (each is broken or failed), and the run's own mount table,
/// hostname and domainname are what they were.
#[test]
#[file_serial(isocheck_host)]
fn with_unshare_and_setns_faked_no_row_passes_and_nothing_of_the_host_changes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let before = own_namespace_state();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("faked.json");
    let bin = assert_cmd::cargo::cargo_bin("isocheck");
    let mut c = isocheck();
    c.args([
        "helper",
        "seccomp-exec",
        "--rule",
        "unshare=errno0",
        "--rule",
        "setns=errno0",
        "--",
    ])
    .arg(&bin)
    .arg("run")
    .arg("--json")
    .arg(&json);
    for r in FAKED_ROWS {
        c.args(["--filter", r]);
    }
    let out = c.output().unwrap();
    let after = own_namespace_state();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr))
        }))
        .unwrap();
    let statuses: Vec<(String, String)> = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), FAKED_ROWS.len(), "{statuses:?}");
    let passed: Vec<_> = statuses.iter().filter(|(_, s)| s == "passed").collect();
    assert!(
        passed.is_empty(),
        "passed with namespaces faked: {passed:?}"
    );
    assert_eq!(after.1, before.1, "the hostname changed");
    assert_eq!(after.2, before.2, "the domainname changed");
    assert_eq!(after.0, before.0, "the run's own mount table changed");
}

/// The CLI guard itself: a shell still in the run's uts namespace refuses
/// (exit 125, nothing of the script runs); one in a new uts ns runs it.
#[test]
fn the_shell_guard_refuses_the_runs_own_namespace_and_passes_a_new_one() {
    let script = format!("{}echo ran", isocheck::namespaces::sh_guard(&["uts"]));
    let here = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(here.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&here.stderr)
        .contains("refusing: still in the run's uts namespace"));
    assert!(here.stdout.is_empty());
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping the new-namespace half: needs root");
        return;
    }
    let tag = isocheck::cleanup::new_tag();
    let inside = isocheck::cleanup::tagged_command("unshare", &tag)
        .args(["--uts", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inside.stdout), "ran\n");
}

/// Where state-changing commands are built: util-linux's namespace tools
/// only through `cleanup::tagged_command` (which starts them in a proven
/// private mount namespace), `ip -n`/`ip netns exec` only in the netns
/// module (which does the same), and every seed script that names the
/// host's identity (`hostname X`, `domainname X`, `sysctl -w`) behind
/// `namespaces::sh_guard`. New call sites must keep to it.
#[test]
fn every_namespace_changing_step_goes_through_a_guard() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for f in rust_files(&src) {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            for tool in ["unshare", "nsenter"] {
                if code.contains(&format!("process::command(\"{tool}\")"))
                    || code.contains(&format!("Command::new(\"{tool}\")"))
                {
                    bad.push(format!(
                        "{rel}:{}: {tool} built without tagged_command",
                        i + 1
                    ));
                }
            }
            if !rel.starts_with("netns")
                && (code.contains("\"netns\", \"exec\"")
                    || (code.contains("\"ip\"") && code.contains("\"-n\"")))
            {
                bad.push(format!(
                    "{rel}:{}: ip -n / ip netns exec outside Netns",
                    i + 1
                ));
            }
            let shell_unshare = ["exec unshare -", "; unshare -", "&& unshare -"]
                .iter()
                .any(|p| code.contains(p));
            let near = |what: &str, r: usize| {
                lines[i.saturating_sub(r)..(i + r + 1).min(lines.len())]
                    .iter()
                    .any(|l| l.contains(what))
            };
            if shell_unshare
                && !near("private_mounts(", 8)
                && !rel.starts_with("experiments/docker")
            {
                bad.push(format!(
                    "{rel}:{}: a shell script runs unshare(1) outside private_mounts",
                    i + 1
                ));
            }
            let names_host = ["hostname {", "domainname {", "sysctl -w {"]
                .iter()
                .any(|p| code.contains(p));
            let guarded = near("sh_guard(", 6);
            if names_host && !guarded && !rel.starts_with("helper") {
                bad.push(format!(
                    "{rel}:{}: a seed script that renames without sh_guard",
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "unguarded steps:\n{}", bad.join("\n"));
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
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
