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

/// Reply of `cg-open-creds` and `cgns-open`: a write of this process's own
/// pid through a `cgroup.procs` fd opened under other conditions.
#[derive(Debug, Serialize, Deserialize)]
pub struct CgMigrate {
    /// The write's errno name; None when it was accepted.
    pub write_errno: Option<String>,
    /// This process's cgroup (`/proc/self/cgroup`) after the write, per hierarchy line.
    pub cgroup_after: Vec<String>,
}

fn migrate_report(fd: &std::fs::File) -> CgMigrate {
    // "0": the writing process itself (kselftest test_core's form).
    let r = nix::unistd::write(fd, b"0");
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    CgMigrate {
        write_errno: r.err().map(|e| format!("{e:?}")),
        cgroup_after: cgroup.lines().map(str::to_string).collect(),
    }
}

/// `cg-open-creds --a A/cgroup.procs --b B/cgroup.procs [--uid U]`: joins
/// A, opens B's procs file (as euid U when given, then back to euid 0)
/// and writes itself through it (kselftest test_cgcore_lesser_euid_open).
pub(super) fn op_open_creds(args: &[String]) -> i32 {
    let run = || -> Result<CgMigrate, String> {
        join(need(args, "a")?)?;
        let uid = opt(args, "uid")
            .map(|u| u.parse::<u32>().map_err(|_| "bad --uid".to_string()))
            .transpose()?;
        if let Some(u) = uid {
            nix::unistd::seteuid(u.into()).map_err(|e| format!("seteuid {u}: {e}"))?;
        }
        let b = need(args, "b")?;
        let fd = std::fs::OpenOptions::new().write(true).open(b);
        if uid.is_some() {
            nix::unistd::seteuid(0.into()).map_err(|e| format!("seteuid 0: {e}"))?;
        }
        let fd = fd.map_err(|e| format!("open {b}: {e}"))?;
        Ok(migrate_report(&fd))
    };
    match run() {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}

/// `cgns-open --a A/cgroup.procs --b B/cgroup.procs [--newns]`: joins A;
/// a clone sharing the fd table (in a new cgroup ns rooted at A with
/// `--newns`) opens B's procs file; this process writes itself through it
/// (kselftest test_cgcore_lesser_ns_open).
pub(super) fn op_cgns_open(args: &[String]) -> i32 {
    use nix::sched::CloneFlags;
    let run = || -> Result<CgMigrate, String> {
        join(need(args, "a")?)?;
        let b = need(args, "b")?.to_string();
        let mut flags = CloneFlags::CLONE_FILES;
        if args.iter().any(|a| a == "--newns") {
            flags |= CloneFlags::CLONE_NEWCGROUP;
        }
        let mut stack = vec![0u8; 64 * 1024];
        // The fd number comes back as the exit code (the table is shared).
        let cb = Box::new(move || -> isize {
            match std::fs::OpenOptions::new().read(true).write(true).open(&b) {
                Ok(f) => std::os::fd::IntoRawFd::into_raw_fd(f) as isize,
                Err(_) => 255,
            }
        });
        // SAFETY: the child only opens a file and returns; the stack outlives it.
        let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
            .map_err(|e| format!("clone: {e}"))?;
        let fd = match nix::sys::wait::waitpid(pid, None).map_err(|e| e.to_string())? {
            nix::sys::wait::WaitStatus::Exited(_, c) if c != 255 => c,
            other => return Err(format!("the opening clone ended {other:?}")),
        };
        // SAFETY: the clone left this fd open in the shared table for us.
        let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(migrate_report(&f))
    };
    match run() {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}
