//! Catalogue section 7: Docker's architecture and the "Linux container" rows,
//! against a real engine with a locally imported busybox image (nothing is
//! pulled). Always compiled in; without an answering engine every row is
//! ignored with the reason.
//!
//! Each experiment starts its own containers (named by `ctx.name`, labelled
//! `isocheck.tag=<tag>`, removed at teardown), so they run in parallel; the
//! steps inside one experiment that need separate containers run on threads.

use crate::docker::{self as dk, Container};
use crate::experiment::{Ctx, Experiment};
use crate::namespaces;
use crate::needs;
use crate::needs::{cmd, Controller, Need, ROOT};

/// What every Docker row needs (an engine, its client, the suite's image
/// from the host's busybox and tar); section 8's container rows too.
pub(crate) const ENGINE: &[Need] =
    needs![ROOT, &[Need::Docker], cmd::DOCKER, cmd::BUSYBOX, cmd::TAR];

/// For containers whose network plays no part: no veth pair appears on the
/// host (other sections watch the host's links) and they start faster. The
/// rows about the seed's default `docker run` keep the default bridge.
const NO_NET: &[&str] = &["--network", "none"];

/// The memory limit the experiments ask for: 32 MiB. Not Docker's minimum
/// (6 MiB): runc's Go init is charged to the container's memory cgroup
/// while it sets the container up, and on cgroup v1 (5.10, TCG guest) the
/// kernel OOM-killed it at 6 MiB (anon 5.7 MB + file 6.8 MB), so the start
/// failed with "cannot start a stopped process".
const LIMIT: u64 = 33_554_432;
/// The seed's request, below current engines' minimum.
const SEED_LIMIT: u64 = 4_194_304;

/// The project's Docker-format seccomp profile, embedded so the binary works
/// wherever it is installed.
const PROFILE: &str = crate::seccomp::PROFILE_JSON;

/// Section 7's rows (Docker), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("docker.container-pid-1", container_pid_1)
        .asserts("the container's shell is pid 1 (echo $$, NSpid) and lsns -t pid shows one process in its pid ns")
        .needs(needs![ENGINE, cmd::LSNS, crate::needs::kc::PID_NS]),
    Experiment::new("docker.exec-is-nsenter", exec_is_nsenter)
        .asserts("a docker exec process has the container init's pid/net/mnt/uts/ipc ns inodes, as nsenter -t INIT does")
        .needs(needs![ENGINE, cmd::NSENTER]),
    Experiment::new("docker.namespaces-created", namespaces_created)
        .asserts("the container has new pid, net, mnt, uts, ipc namespaces; shares user and time; cgroup shared on v1, private on v2")
        .anchor("youki ns_itype").anchor("runtime-tools linux_ns_itype").anchor("runtime-tools linux_ns_nopath")
        .needs(needs![ENGINE, cmd::LSNS, crate::needs::kc::PID_NS, crate::needs::kc::NET_NS, crate::needs::kc::UTS_NS, crate::needs::kc::IPC_NS]),
    Experiment::new("docker.nprocs-rises", nprocs_rises)
        .asserts("NPROCS of the container's pid ns (lsns) rises by exactly 1 while `sleep 60` runs inside")
        .needs(needs![ENGINE, cmd::LSNS, crate::needs::kc::PID_NS]),
    Experiment::new("docker.netns-not-in-ip-netns", netns_not_in_ip_netns)
        .asserts("the container's net ns is listed by lsns -t net and absent from ip netns list")
        .needs(needs![ENGINE, cmd::LSNS, cmd::IP, crate::needs::kc::NET_NS]),
    Experiment::new("docker.container-network", container_network)
        .asserts("the container pings its bridge gateway; with --network none it has only lo and ping fails 'Network is unreachable'")
        .needs(needs![ENGINE, cmd::IP, crate::needs::kc::NET_NS, crate::needs::kc::VETH, crate::needs::kc::BRIDGE]),
    Experiment::new("docker.memory-limit-matches", memory_limit_matches)
        .asserts("--memory 33554432: the host cgroup limit file reads 33554432; the seed's 4194304 is refused with the engine's minimum")
        .anchor("youki cgroup_v1_memory").anchor("runtime-tools linux_cgroups_memory")
        .needs(needs![ENGINE, crate::needs::kc::MEMCG]),
    Experiment::new("docker.oom-killed", oom_killed)
        .asserts("over the limit: exit 137, State.OOMKilled=true, and the container cgroup's oom_kill counter rose")
        .anchor("moby TestRunOOMExitCode")
        .needs(needs![ENGINE, crate::needs::kc::MEMCG]),
    Experiment::new("docker.default-seccomp", default_seccomp)
        .asserts("default profile: Seccomp: 2 and `unshare -U true` fails with EPERM; the project's profile file does the same")
        .anchor("youki seccomp").anchor("runtime-tools linux_seccomp").anchor("moby TestRunSeccompProfileDenyUnshare")
        .needs(needs![ENGINE, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("docker.seccomp-unconfined", seccomp_unconfined)
        .asserts("--security-opt seccomp=unconfined: Seccomp: 0 and `unshare -U true` succeeds")
        .needs(needs![ENGINE, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("docker.process-tree", process_tree)
        .asserts("the container's init is a child of containerd-shim-runc-v2; dockerd and containerd run; no runc stays resident")
        .needs(needs![ENGINE, crate::needs::kc::PID_NS]),
    Experiment::new("docker.export-rootfs", export_rootfs)
        .asserts("docker export | tar gives the image's tree (/bin/busybox, /bin/sh); pivot_root into it sees only its files and pid 1")
        .needs(needs![ENGINE, crate::needs::kc::OVERLAY_FS]),
    Experiment::new("docker.housekeeping", housekeeping)
        .asserts("docker ps -a / container ls -a / image ls -a list the suite's objects; a label-filtered prune removes them; none left")
        .needs(ENGINE),
    Experiment::new("docker.hardening-flags", hardening_flags)
        .asserts("--pids-limit 8: host pids.max reads 8 and the 9th process cannot fork; --read-only: a write to / fails EROFS; --user 1000 --security-opt no-new-privileges: NoNewPrivs 1 and a setuid-root exec keeps euid 1000")
        .anchor("moby TestRunPIDsLimit").anchor("moby TestRunContainerWithReadonlyRootfs").anchor("moby TestRunNoNewPrivSetuid").anchor("youki root_readonly").anchor("youki process_user").anchor("runtime-tools root_readonly_true").anchor("runtime-tools process_user")
        .needs(needs![ENGINE, &[Need::Cgroup(Controller::Pids)]])
        .control("the same three runs without the flags: the forks and the write succeed, the setuid exec gives euid 0"),
];

mod confinement;
mod engine;
mod hardening;
mod isolation;
mod limits;

use confinement::{default_seccomp, seccomp_unconfined};
use engine::{export_rootfs, housekeeping, process_tree};
use hardening::hardening_flags;
use isolation::{
    container_network, container_pid_1, exec_is_nsenter, namespaces_created, netns_not_in_ip_netns,
    nprocs_rises,
};
use limits::{memory_limit_matches, oom_killed};

pub use confinement::seccomp_mode;
pub use hardening::euid_probe_elf;
pub use isolation::same_ns_as_init;
pub use limits::{cgroup_path, judge_seed_request, kv, oom_killed_pids, parse_minimum};

// ---------------------------------------------------------------- helpers

/// Runs two independent steps at once (each usually starts a container).
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let hb = s.spawn(b);
        let ra = a();
        let rb = hb.join().expect("docker step thread panicked");
        (ra, rb)
    })
}

/// A process's command name; empty once it is gone, as a process may exit
/// while the rows look at it.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// NPROCS of one namespace as `lsns -t KIND` reports it.
fn lsns_nprocs(kind: &str, ns: u64) -> anyhow::Result<Option<u64>> {
    Ok(namespaces::lsns(kind)?
        .into_iter()
        .find(|r| r.ns == ns)
        .map(|r| r.nprocs))
}

fn observe_versions(ctx: &mut Ctx) -> anyhow::Result<()> {
    let v = dk::versions(ctx)?;
    ctx.observe_userspace("docker_versions", v);
    Ok(())
}

/// `sh -c SCRIPT` in a fresh container, waited for; stdout, stderr, status.
fn sh_once(
    ctx: &mut Ctx,
    role: &str,
    opts: &[&str],
    script: &str,
) -> anyhow::Result<(Container, crate::process::Ran)> {
    dk::run_fg(ctx, role, opts, &["sh", "-c", script])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Problem;
    use rstest::rstest;
    use std::collections::BTreeMap;

    const REFUSAL: &str =
        "docker: Error response from daemon: Minimum memory limit allowed is 6MB.";

    /// The seed's request, as engines answer it: refused with a minimum
    /// (here), or accepted, when the cgroup must read back 4194304.
    #[rstest]
    #[case(125, REFUSAL, None, true)]
    #[case(125, "docker: some other error", None, false)]
    #[case(0, "", Some("4194304"), true)]
    #[case(0, "", Some("6291456"), false)]
    #[case(0, "", None, false)]
    fn seed_request(
        #[case] st: i32,
        #[case] ans: &str,
        #[case] rb: Option<&str>,
        #[case] ok: bool,
    ) {
        let r = judge_seed_request(st, ans, rb);
        assert_eq!(r.is_ok(), ok, "{r:?}");
    }

    /// Two unreadable links never compare equal.
    #[test]
    fn unreadable_links_are_not_the_same_ns() {
        let m = |v: &[(&str, u64)]| -> BTreeMap<String, u64> {
            v.iter().map(|(k, i)| (k.to_string(), *i)).collect()
        };
        let empty = m(&[]);
        let init = m(&[("pid", 1), ("net", 2), ("mnt", 3), ("uts", 4), ("ipc", 5)]);
        let host = m(&[
            ("pid", 11),
            ("net", 12),
            ("mnt", 13),
            ("uts", 14),
            ("ipc", 15),
        ]);
        assert!(matches!(
            same_ns_as_init(&empty, &host, &empty, "x"),
            Err(Problem::Broken(_))
        ));
        assert!(matches!(
            same_ns_as_init(&init, &host, &empty, "x"),
            Err(Problem::Fail(_))
        ));
        assert!(matches!(
            same_ns_as_init(&init, &init, &init, "x"),
            Err(Problem::Fail(_))
        ));
        assert!(same_ns_as_init(&init, &host, &init, "x").is_ok());
    }

    /// Recorded kernel lines: the exec's dd killed first, then the init.
    #[test]
    fn oom_kills_name_their_host_pids() {
        let recs = vec![
            "3,2001,77,-;Memory cgroup out of memory: Killed process 4242 (dd) total-vm:70000kB"
                .to_string(),
            "6,2002,78,-;oom_reaper: reaped process 4242 (dd)".to_string(),
            "3,2003,79,-;Memory cgroup out of memory: Killed process 4100 (dd) total-vm:70000kB"
                .to_string(),
        ];
        assert_eq!(oom_killed_pids(&recs), vec![4242, 4100]);
        assert!(!oom_killed_pids(&recs[..2]).contains(&4100));
    }

    #[rstest]
    #[case("12:memory:/docker/abc\n0::/\n", Some("memory"), Some("/docker/abc"))]
    #[case("5:cpu,cpuacct:/docker/x\n", Some("cpu"), Some("/docker/x"))]
    #[case("5:cpu,cpuacct:/docker/x\n", Some("memory"), None)]
    #[case(
        "0::/system.slice/docker-abc.scope\n",
        None,
        Some("/system.slice/docker-abc.scope")
    )]
    #[case("1:name=systemd:/x\n", None, None)]
    fn finds_cgroup_paths(
        #[case] text: &str,
        #[case] ctrl: Option<&str>,
        #[case] want: Option<&str>,
    ) {
        assert_eq!(cgroup_path(text, ctrl).as_deref(), want);
    }

    #[rstest]
    #[case("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill", Some(3))]
    #[case("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n", "oom_kill", Some(1))]
    #[case("oom_kill_disable 0\n", "oom_kill", None)]
    fn reads_counters(#[case] text: &str, #[case] key: &str, #[case] want: Option<u64>) {
        assert_eq!(kv(text, key), want);
    }

    #[rstest]
    #[case("Name:\tsh\nSeccomp:\t2\nSeccomp_filters:\t1\n", Some(2))]
    #[case("Seccomp:\t0\n", Some(0))]
    #[case("Name:\tsh\n", None)]
    fn reads_seccomp_mode(#[case] status: &str, #[case] want: Option<u32>) {
        assert_eq!(seccomp_mode(status), want);
    }

    #[rstest]
    #[case("docker: Error response from daemon: Minimum memory limit allowed is 6MB.", Some(6 << 20))]
    #[case("Minimum memory limit allowed is 4096k", Some(4 << 20))]
    #[case("some other error", None)]
    fn parses_the_engine_minimum(#[case] msg: &str, #[case] want: Option<u64>) {
        assert_eq!(parse_minimum(msg), want);
    }

    #[test]
    fn the_euid_probe_is_a_static_elf() {
        let b = euid_probe_elf();
        assert_eq!(b.len(), 136);
        assert_eq!(dk::elf_has_interp(&b), Ok(false));
    }

    #[test]
    fn the_profile_fixture_is_a_docker_profile() {
        // The seccomp section owns the file's content (allowlist or
        // denylist); the experiment proves what it blocks. Here: it parses
        // as a Docker profile, so `--security-opt seccomp=FILE` can load it.
        let v: serde_json::Value = serde_json::from_str(PROFILE).unwrap();
        assert!(v["defaultAction"]
            .as_str()
            .is_some_and(|a| a.starts_with("SCMP_ACT_")));
        assert!(v["syscalls"].as_array().is_some_and(|a| !a.is_empty()));
    }
}
