//! `isocheck helper whoami`: what a process sees of itself, as JSON.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reply of `whoami`: what a process sees of itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Whoami {
    /// getpid(): 1 for a namespace's init.
    pub pid: i32,
    /// getppid(): 0 when the parent is outside the pid namespace.
    pub ppid: i32,
    /// getuid() inside its user namespace.
    pub uid: u32,
    /// getgid() inside its user namespace.
    pub gid: u32,
    /// Namespace inodes by type (`pid`, `mnt`, …).
    pub ns: BTreeMap<String, u64>,
    /// The numeric entries of /proc, sorted.
    pub proc_pids: Vec<i32>,
    /// gethostname(): the UTS rows compare it.
    pub hostname: String,
    /// /proc/self/cgroup, verbatim.
    pub cgroup: String,
    /// Clocks in seconds (-1: unreadable).
    pub monotonic: f64,
    /// CLOCK_BOOTTIME in seconds: a time namespace offsets it.
    pub boottime: f64,
    /// CLOCK_REALTIME in seconds: no namespace offsets it.
    pub realtime: f64,
    /// Owner uid of / as seen inside (-1: stat failed).
    pub root_owner: i64,
    /// /proc/self/mountinfo, verbatim.
    pub mountinfo: String,
    /// /proc/self/status, verbatim (NSpid, capabilities, Seccomp).
    pub status: String,
}

/// What a process sees of itself: pid, ppid, namespaces, /proc, hostname,
/// cgroup, ids, clocks. One JSON object on stdout.
pub(super) fn op_whoami(_args: &[String]) -> i32 {
    let proc_pids: Vec<i32> = std::fs::read_dir("/proc")
        .map(|rd| {
            let mut v: Vec<i32> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let clock = |id| {
        nix::time::clock_gettime(id)
            .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
            .unwrap_or(-1.0)
    };
    use nix::time::ClockId;
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned());
    super::reply(&Whoami {
        pid: nix::unistd::getpid().as_raw(),
        ppid: nix::unistd::getppid().as_raw(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        ns: crate::namespaces::inodes("self"),
        proc_pids,
        hostname: hostname.unwrap_or_default(),
        cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        monotonic: clock(ClockId::CLOCK_MONOTONIC),
        boottime: clock(ClockId::CLOCK_BOOTTIME),
        realtime: clock(ClockId::CLOCK_REALTIME),
        root_owner: nix::sys::stat::stat("/")
            .map(|s| s.st_uid as i64)
            .unwrap_or(-1),
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        status: std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
    })
}
