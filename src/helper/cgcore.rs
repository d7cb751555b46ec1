//! Cgroup ops for the freeze, kill, affinity and migration rows: each is a
//! dedicated child that moves only itself (a row never writes another pid
//! into a group).

use super::{die, reply};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::AsRawFd;

/// `--NAME VALUE` pairs (every option of these ops takes one value).
fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == format!("--{name}"))
        .map(|w| w[1].as_str())
}

fn need<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    opt(args, name).ok_or_else(|| format!("missing --{name}"))
}

/// Writes this process's pid into a `cgroup.procs` file.
fn join(procs: &str) -> Result<(), String> {
    let me = std::process::id().to_string();
    std::fs::write(procs, &me).map_err(|e| format!("writing pid {me} to {procs}: {e}"))
}

fn ready() {
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
}

/// `cg-forker --procs FILE`: joins, keeps 8 children parked, prints
/// `ready PID`, then forks short-lived children without end, so a fork is
/// in flight whenever the group is killed (kselftest test_cgkill_forkbomb).
pub(super) fn op_forker(args: &[String]) -> i32 {
    use nix::unistd::{fork, ForkResult};
    if let Err(e) = need(args, "procs").and_then(join) {
        return die(e);
    }
    for _ in 0..8 {
        // SAFETY: single-threaded; the child only pauses.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => loop {
                nix::unistd::pause();
            },
            Ok(ForkResult::Parent { .. }) => {}
            Err(e) => return die(format!("fork: {e}")),
        }
    }
    ready();
    loop {
        // SAFETY: as above; the child exits at once.
        if let Ok(ForkResult::Child) = unsafe { fork() } {
            unsafe { libc::_exit(0) };
        }
        let _ = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
}

/// `cg-count --procs FILE --counter PATH`: joins, maps the 8-byte file
/// PATH shared and increments the number in it without end; prints
/// `ready PID` before counting. A frozen task's number stops.
pub(super) fn op_count(args: &[String]) -> i32 {
    let counter = match need(args, "counter") {
        Ok(c) => c,
        Err(e) => return die(e),
    };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(counter)
    {
        Ok(f) => f,
        Err(e) => return die(format!("open {counter}: {e}")),
    };
    if let Err(e) = need(args, "procs").and_then(join) {
        return die(e);
    }
    // SAFETY: a shared mapping of the 8-byte file, written only within it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return die(format!(
            "mmap {counter}: {}",
            std::io::Error::last_os_error()
        ));
    }
    ready();
    let n = p as *mut u64;
    let mut i: u64 = 0;
    loop {
        i = i.wrapping_add(1);
        // SAFETY: within the mapping; volatile so every step reaches memory.
        unsafe { std::ptr::write_volatile(n, i) };
    }
}

/// Reply of `cg-affinity`: what the scheduler allows this process, in the
/// group and after it moved itself out.
#[derive(Debug, Serialize, Deserialize)]
pub struct CgAffinity {
    /// `sched_getaffinity` in the group (or where it started, without `--procs`).
    pub affinity: Vec<usize>,
    /// `Cpus_allowed_list:` of /proc/self/status there.
    pub cpus_allowed_list: String,
    /// errno name of `sched_setaffinity({cpu})`, None when it succeeded.
    pub set_other_errno: Option<String>,
    /// The affinity after moving itself to `--out` (None without it).
    pub affinity_out: Option<Vec<usize>>,
}

fn affinity() -> Result<Vec<usize>, String> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map_err(|e| format!("sched_getaffinity: {e}"))?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|c| set.is_set(*c).unwrap_or(false))
        .collect())
}

/// `cg-affinity [--procs FILE] --cpu N [--out FILE]`: joins (when given),
/// reads its affinity, tries to run on CPU N, then moves itself to the
/// group of `--out` and reads the affinity again.
pub(super) fn op_affinity(args: &[String]) -> i32 {
    match affinity_report(args) {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}

fn affinity_report(args: &[String]) -> Result<CgAffinity, String> {
    if let Some(p) = opt(args, "procs") {
        join(p)?;
    }
    let cpu: usize = need(args, "cpu")?
        .parse()
        .map_err(|_| "bad --cpu".to_string())?;
    let affinity_in = affinity()?;
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let list = crate::process::status_values(&status, "Cpus_allowed_list").join(" ");
    let mut want = nix::sched::CpuSet::new();
    want.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    let set_other_errno = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &want)
        .err()
        .map(|e| format!("{e:?}"));
    let affinity_out = match opt(args, "out") {
        Some(out) => {
            join(out)?;
            Some(affinity()?)
        }
        None => None,
    };
    Ok(CgAffinity {
        affinity: affinity_in,
        cpus_allowed_list: list,
        set_other_errno,
        affinity_out,
    })
}
