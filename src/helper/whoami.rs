//! `isocheck helper whoami`: what a process sees of itself, as JSON.

use serde_json::json;

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
    let j = json!({
        "pid": nix::unistd::getpid().as_raw(),
        "ppid": nix::unistd::getppid().as_raw(),
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "ns": crate::namespaces::inodes("self"),
        "proc_pids": proc_pids,
        "hostname": nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        "cgroup": std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        "monotonic": clock(ClockId::CLOCK_MONOTONIC),
        "boottime": clock(ClockId::CLOCK_BOOTTIME),
        "realtime": clock(ClockId::CLOCK_REALTIME),
        "root_owner": nix::sys::stat::stat("/").map(|s| s.st_uid as i64).unwrap_or(-1),
        "mountinfo": std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        "status": std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
    });
    println!("{j}");
    0
}
