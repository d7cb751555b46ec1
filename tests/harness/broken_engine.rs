//! A Docker engine that answers but cannot start a container: every Docker
//! row that needs one comes out broken (with the engine's reason) or
//! ignored, never failed. A container that did not start says nothing
//! about isolation.

use super::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The rows that make no container start (they create, export, list and
/// prune): an engine whose runtime is broken can still pass them honestly.
const NEED_NO_START: &[&str] = &["docker.export-rootfs", "docker.housekeeping"];

/// A second dockerd under a temp dir of its own (socket, data root, exec
/// root, pidfile), whose default runtime is `/bin/false`, in a network
/// namespace of its own: `--bridge=none` makes dockerd delete any `docker0`
/// it sees (measured: it took the host engine's bridge), and without it the
/// two engines would share one. No iptables, no forwarding either.
/// Dropping it stops it and removes everything it made.
struct BrokenEngine {
    dir: PathBuf,
    dockerd: std::process::Child,
}

impl BrokenEngine {
    fn start(dockerd: &Path) -> BrokenEngine {
        let dir = PathBuf::from(format!("/tmp/isocheck-brokenengine-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("exec")).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let mut cmd = std::process::Command::new(dockerd);
        // SAFETY: the forked child is single-threaded; unshare is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .arg("-H")
            .arg(format!("unix://{}", dir.join("sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .args(["--bridge=none", "--add-runtime", "broken=/bin/false"])
            .args(["--default-runtime", "broken"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: its managed containerd goes with it.
            .process_group(0)
            .spawn()
            .unwrap();
        let engine = BrokenEngine {
            dir,
            dockerd: child,
        };
        engine.wait_answers();
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    fn wait_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        panic!("the second dockerd did not answer within 60 s: {log}");
    }
}

impl Drop for BrokenEngine {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.dockerd.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.dockerd.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.dockerd.wait();
        // dockerd bind-mounts its data root onto itself; deepest first.
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Mount points at or below `dir` in this process's mount table.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// The host's link names but containers' veths (other runs' containers on
/// the host engine come and go meanwhile): the second engine must take
/// none of them (`--bridge=none` deletes a `docker0` it can see).
fn host_links() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with("veth"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn which(prog: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.exists())
}

#[test]
#[file_serial(isocheck_host)]
fn an_engine_that_cannot_start_containers_breaks_docker_rows_never_fails_them() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (it starts a second dockerd)");
        return;
    }
    let (Some(dockerd), Some(_)) = (which("dockerd"), which("busybox")) else {
        eprintln!("skipping: dockerd or busybox not found: install docker.io and busybox-static (ci/install-host-deps.sh --docker)");
        return;
    };
    let links = host_links();
    let engine = BrokenEngine::start(&dockerd);
    let report = engine.dir.join("report.json");
    let out = isocheck()
        .env(
            "DOCKER_HOST",
            format!("unix://{}", engine.socket().display()),
        )
        .args([
            "run",
            "--filter",
            "docker.",
            "--filter",
            "esc.docker-",
            "--json",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    drop(engine);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("no report ({e}); isocheck said: {stderr}"));
    let rows = r["experiments"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.len() >= 15,
        "only {} Docker rows ran: {stderr}",
        rows.len()
    );
    for row in &rows {
        let (id, status) = (row["id"].as_str().unwrap(), row["status"].as_str().unwrap());
        let reason = row["reason"].as_str().unwrap_or_default();
        assert_ne!(
            status, "failed",
            "{id} failed against an engine that cannot start containers: {reason}"
        );
        if NEED_NO_START.contains(&id) || status == "ignored" {
            continue;
        }
        assert_eq!(status, "broken", "{id}: {reason}");
        assert!(
            reason.contains("/bin/false") || reason.contains("OCI runtime"),
            "{id} is broken without the engine's reason: {reason}"
        );
    }
    assert_eq!(host_links(), links, "the host's links changed");
}
