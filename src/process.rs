//! Running child commands and reading what they did.

use anyhow::anyhow;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether the suite runs in ci/kernel-run.sh's qemu guest (its init sets
/// ISOCHECK_GUEST): a missing tool's fix is then on the host, and the
/// engine runs far slower.
pub fn in_qemu_guest() -> bool {
    std::env::var_os("ISOCHECK_GUEST").is_some_and(|v| !v.is_empty())
}

/// Reads a file to a string, naming the path in the error.
pub fn read(path: impl AsRef<std::path::Path>) -> anyhow::Result<String> {
    let p = path.as_ref();
    std::fs::read_to_string(p).map_err(|e| anyhow!("reading {}: {e}", p.display()))
}

/// Directories searched for tools after the caller's PATH. sudo, CI runners
/// and cron often drop the sbin directories, where iproute2, iptables and
/// nft live; the needs probe (`host::which`) looks there too, so a tool it
/// found is the very tool a command starts.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin"];

/// The search path of every command the suite starts: the caller's PATH,
/// then [`SBIN_DIRS`]. Children inherit it, so `unshare … ip` and `sh -c`
/// find the same tools as the probe.
pub fn search_path() -> std::ffi::OsString {
    let caller = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let dirs: Vec<std::path::PathBuf> = std::env::split_paths(&caller)
        .chain(SBIN_DIRS.iter().map(std::path::PathBuf::from))
        .collect();
    std::env::join_paths(dirs).unwrap_or(caller)
}

/// A command whose text the suite may read: `LC_ALL=C` (util-linux, iputils
/// and coreutils translate their messages: "Das Netzwerk ist nicht
/// erreichbar"), and the tool search path of [`search_path`]. Every command
/// the suite starts is built here or in `cleanup::tagged_command`, which
/// builds on it.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("LC_ALL", "C").env("PATH", search_path());
    c
}

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The exit code; None when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Everything printed on stdout, lossily UTF-8.
    pub stdout: String,
    /// Everything printed on stderr, lossily UTF-8.
    pub stderr: String,
}

impl Ran {
    fn from(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Ran {
        Ran {
            code: status.code(),
            signal: status.signal(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// The status as a shell prints it in `$?`: the code, or 128 + signal.
    pub fn shell_status(&self) -> i32 {
        self.code.unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }

    /// Exit code 0; death by a signal is not success.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The errno a guarded child (`namespaces::private_mounts`, a netns
/// `enter`) fails its spawn with when the namespace it was to run in is
/// the run's own. ENOTRECOVERABLE: no step the suite starts gives it.
pub const REFUSED_ERRNO: i32 = libc::ENOTRECOVERABLE;

/// What a failed spawn says: a guard's refusal in words, else the OS error.
fn spawn_failed(e: std::io::Error, cmd: &Command) -> anyhow::Error {
    if e.raw_os_error() == Some(REFUSED_ERRNO) {
        anyhow!(
            "refusing to start `{}`: its namespace is still the run's own (unshare(2) or setns(2) \
             returned success without changing it)",
            describe(cmd)
        )
    } else {
        anyhow::Error::new(e).context(format!("starting `{}`", describe(cmd)))
    }
}

/// Runs to completion with stdin closed, capturing stdout and stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<Ran> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_failed(e, cmd))?;
    Ok(Ran::from(out.status, out.stdout, out.stderr))
}

/// Runs and insists on exit 0; returns stdout.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let r = run(cmd)?;
    if !r.success() {
        return Err(anyhow!(
            "`{}` exited {}: {}",
            describe(cmd),
            r.shell_status(),
            r.stderr.trim()
        ));
    }
    Ok(r.stdout)
}

/// A long-running child that is killed (SIGKILL) and reaped when dropped,
/// so a failing assertion never leaves it behind.
pub struct Spawned {
    /// The child itself, for callers that signal it or read its status.
    pub child: Child,
    lines: Option<BufReader<ChildStdout>>,
    leader_first: bool,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Spawned {
    /// Spawns with stdin closed and stdout piped for `read_line`; killed and reaped on drop.
    pub fn start(cmd: &mut Command) -> anyhow::Result<Spawned> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_failed(e, cmd))?;
        let lines = child.stdout.take().map(BufReader::new);
        // Drained on a thread of its own, so a long-lived child never blocks
        // on a full pipe and nothing it prints (util-linux's "unshare:
        // sigprocmask unblock failed" when killed) lands in the run's table;
        // what it said goes into the error of a failed `read_line`.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = String::new();
                let _ = std::io::Read::read_to_string(&mut pipe, &mut buf);
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&buf);
                }
            });
        }
        Ok(Spawned {
            child,
            lines,
            leader_first: false,
            stderr,
        })
    }

    /// What the child has printed on stderr so far (complete once it exited
    /// and its last descendant closed the pipe).
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Kill the started process before its descendants: for a parent that
    /// reports how its child died. `unshare --fork` re-raises a child's
    /// fatal signal in itself; for SIGKILL util-linux 2.38 cannot and prints
    /// "unshare: sigprocmask unblock failed: Invalid argument" (onto the
    /// suite's terminal). A parent already dead prints nothing.
    pub fn leader_first(mut self) -> Spawned {
        self.leader_first = true;
        self
    }

    /// The child's pid in this (the host's) namespace.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the child prints (blocks until it does or exits).
    pub fn read_line(&mut self) -> anyhow::Result<String> {
        let mut s = String::new();
        let r = self.lines.as_mut().ok_or_else(|| anyhow!("no stdout"))?;
        let n = r.read_line(&mut s)?;
        if n == 0 {
            // Its stderr is complete once stdout closed with its exit.
            let _ = self.child.wait();
            wait_until(Duration::from_millis(200), || {
                !self.stderr_text().is_empty()
            });
            let said = self.stderr_text();
            return Err(anyhow!(
                "child exited before printing a line{}",
                if said.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", said.trim())
                }
            ));
        }
        Ok(s.trim_end().to_string())
    }

    /// Reads the `child-pid N` line of `isocheck helper unshare --print-pid`.
    pub fn child_pid(&mut self) -> anyhow::Result<i32> {
        let l = self.read_line()?;
        l.strip_prefix("child-pid ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("expected `child-pid N`, got {l:?}"))
    }

    /// Kills the child and every descendant, deepest first, each level
    /// reaped by its still-living parent before the parents go. Orphans
    /// would be left to the host's pid 1, which on these VMs reaps late (a
    /// dying namespace init waits for that, ~2 s), and an init forked by
    /// `unshare --fork` would otherwise outlive its parent.
    pub fn kill(&mut self) {
        let mut levels = vec![vec![self.pid()]];
        while let Some(last) = levels.last() {
            let next: Vec<i32> = last.iter().flat_map(|p| children_of(*p)).collect();
            if next.is_empty() {
                break;
            }
            levels.push(next);
        }
        if self.leader_first {
            let _ = self.child.kill();
        }
        for level in levels.iter().skip(1).rev() {
            for p in level {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p),
                    nix::sys::signal::SIGKILL,
                );
            }
            // Deepest first, each level is reaped by its living parent, so its
            // /proc entry goes. With the leader killed first the level is
            // orphaned and its zombies wait on the host's late pid 1: a zombie
            // has already released its namespaces, so it counts as gone.
            let leader_first = self.leader_first;
            wait_until(Duration::from_secs(5), || {
                level.iter().all(|p| {
                    if leader_first {
                        !is_running(*p)
                    } else {
                        !std::path::Path::new(&format!("/proc/{p}")).exists()
                    }
                })
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit on its own, for rows that assert on how it ended.
    pub fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        Ok(self.child.wait()?)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` until it holds, for at most `limit`. For states the kernel
/// reaches asynchronously (a process appearing in /proc, a namespace being
/// listed), never as a stand-in for proving that something did not happen.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether a pid names a live (not zombie) process.
pub fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                .is_some_and(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// Every descendant of a process, from the children lists.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = children_of(pid);
    let mut i = 0;
    while i < out.len() {
        let more = children_of(out[i]);
        out.extend(more);
        i += 1;
    }
    out
}

/// Child pids of a process, from `/proc/<pid>/task/*/children`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out
}

/// The whitespace-separated values of the `KEY:` line of a /proc/PID/status
/// text (`Uid`, `NoNewPrivs`, `Seccomp`, …); empty when the line is absent.
/// The key matches whole, so `Seccomp` never reads `Seccomp_filters`.
pub fn status_values(status: &str, key: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| *k == key))
        .map(|(_, v)| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod command_env_tests {
    /// What every command of the suite runs with, whatever the caller's
    /// locale and PATH: untranslated messages, and the probe's search path.
    #[test]
    fn commands_run_untranslated_with_the_sbin_dirs() {
        let out = super::command("sh")
            .args(["-c", "echo \"$LC_ALL|$PATH\""])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (lc, path) = text.trim().split_once('|').unwrap();
        assert_eq!(lc, "C");
        let dirs: Vec<&str> = path.split(':').collect();
        assert!(
            dirs.contains(&"/usr/sbin") && dirs.contains(&"/sbin"),
            "{path}"
        );
        assert_eq!(std::ffi::OsString::from(path), super::search_path());
    }
}
