//! Ops for the deeper uts, ipc and time rows: each unshares itself (a
//! dedicated helper process), refuses to change anything while still in the
//! run's own namespace, and reports what it saw.

use super::sc_stack::{forked, Ended};
use super::{die, refuse_in_host_ns, reply};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == format!("--{name}"))
        .map(|w| w[1].as_str())
}

fn unshare_or(flags: CloneFlags, what: &str) -> Result<(), String> {
    unshare(flags).map_err(|e| format!("unshare({what}): {e}"))
}

// ---------------------------------------------------------------------------
// uts-domainname

/// `(hostname, domainname)` as uname(2) reports them.
pub type Names = (String, String);

/// Reply of `uts-domainname`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UtsReport {
    /// The outer (suite-made) namespace's names once set.
    pub outer: Names,
    /// After setdomainname in the inner namespace (the outer one in the control).
    pub inner: Names,
    /// After setns back into the outer namespace.
    pub after_setns: Names,
}

fn names() -> Names {
    let u = nix::sys::utsname::uname();
    u.map(|u| {
        (
            u.nodename().to_string_lossy().into_owned(),
            u.domainname().to_string_lossy().into_owned(),
        )
    })
    .unwrap_or_default()
}

fn set_domainname(name: &str) -> Result<(), String> {
    // SAFETY: a byte buffer of the given length.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r != 0 {
        return Err(format!(
            "setdomainname: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn uts_steps(inner: bool) -> Result<UtsReport, String> {
    unshare_or(CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS")?;
    refuse_in_host_ns("uts")?;
    nix::unistd::sethostname("isoc-outer").map_err(|e| format!("sethostname: {e}"))?;
    set_domainname("outer.isoc")?;
    let outer_ns = std::fs::File::open("/proc/self/ns/uts").map_err(|e| e.to_string())?;
    let outer = names();
    if inner {
        unshare_or(CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS, inner")?;
    }
    refuse_in_host_ns("uts")?;
    set_domainname("inner.isoc")?;
    let inner_names = names();
    nix::sched::setns(outer_ns.as_fd(), CloneFlags::CLONE_NEWUTS)
        .map_err(|e| format!("setns: {e}"))?;
    Ok(UtsReport {
        outer,
        inner: inner_names,
        after_setns: names(),
    })
}

/// `uts-domainname --inner yes|no`: a new (outer) uts ns with its own
/// names, then (with `yes`) a nested one whose domainname is changed, then
/// setns back to the outer one.
pub(super) fn op_domainname(args: &[String]) -> i32 {
    match uts_steps(flag(args, "inner") == Some("yes")) {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}

// ---------------------------------------------------------------------------
// timens-boottime

/// Reply of `timens-boottime`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TimensReport {
    /// Each refused offsets line and its errno (None: accepted).
    pub bad_lines: Vec<(String, Option<String>)>,
    /// The first field of /proc/uptime in the child, and the host's right before and after.
    pub uptime: (f64, f64, f64),
    /// /proc/stat btime in the child and in the host.
    pub btime: (i64, i64),
    /// Writing offsets once a task is in the namespace: errno (None: accepted).
    pub late_write: Option<String>,
}

fn write_offsets(line: &str) -> Option<String> {
    std::fs::write("/proc/self/timens_offsets", line)
        .err()
        .map(|e| {
            format!(
                "{:?}",
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
            )
        })
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

fn btime() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        })
        .unwrap_or(-1)
}

fn timens_steps(offset: Option<i64>) -> Result<TimensReport, String> {
    unshare_or(
        CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        "CLONE_NEWTIME",
    )?;
    refuse_in_host_ns("time_for_children")?;
    // CLOCK_REALTIME (0) has no offset; nanoseconds must be in [0, 1e9).
    let bad = ["0 1 0", "boottime 1 -1", "boottime 1 1000000000"];
    let bad_lines = bad
        .iter()
        .map(|l| (l.to_string(), write_offsets(l)))
        .collect();
    if let Some(s) = offset {
        if let Some(e) = write_offsets(&format!("boottime {s} 0")) {
            return Err(format!("writing the boottime offset: {e}"));
        }
    }
    let before = uptime();
    let child = forked(|| (uptime(), btime()))?;
    let after = uptime();
    let Ended::Answered((up, bt)) = child else {
        return Err(format!("the time-ns child ended {child:?}"));
    };
    Ok(TimensReport {
        bad_lines,
        uptime: (up, before, after),
        btime: (bt, btime()),
        late_write: write_offsets("boottime 1 0"),
    })
}

/// `timens-boottime [--offset SECONDS]`: unshares a time ns, tries invalid
/// offsets, sets CLOCK_BOOTTIME's, forks a child into it and compares its
/// /proc/uptime and btime with its own (the run's time ns).
pub(super) fn op_boottime(args: &[String]) -> i32 {
    let offset = flag(args, "offset").and_then(|s| s.parse().ok());
    match timens_steps(offset) {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}

// ---------------------------------------------------------------------------
// ipc-objects

/// What ipc ns B found of A's objects, and the mqueue listings.
#[derive(Debug, Serialize, Deserialize)]
pub struct IpcReport {
    /// semget(KEY, 1, 0) in B: errno, None when found.
    pub sem_lookup: Option<String>,
    /// msgget(KEY, 0) in B: errno, None when found.
    pub msg_lookup: Option<String>,
    /// B's semget(KEY, IPC_CREAT) gave an id of its own (differs from A's or A's was not found).
    pub b_own_sem: bool,
    /// Names in an mqueue fs mounted in A.
    pub mqueue_a: Vec<String>,
    /// Names in an mqueue fs mounted in B.
    pub mqueue_b: Vec<String>,
}

fn errno_of(r: libc::c_int) -> Option<String> {
    (r < 0).then(|| format!("{:?}", nix::errno::Errno::last()))
}

/// Mounts a new mqueue fs at `dir` (in this private mount ns) and lists
/// it; with `mount` false lists what is mounted there (a process sharing
/// A's namespaces: the same fs again would be EBUSY).
fn mqueue_names(dir: &str, mount: bool) -> Result<Vec<String>, String> {
    if mount {
        refuse_in_host_ns("mnt")?;
        nix::mount::mount(
            Some("mqueue"),
            dir,
            Some("mqueue"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount mqueue on {dir}: {e}"))?;
    }
    super::sorted_names(dir)
}

fn private_mounts() -> Result<(), String> {
    refuse_in_host_ns("mnt")?;
    use nix::mount::MsFlags;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))
}

fn b_side(key: i32, a_sem: i32, share: bool, dir: &str) -> Result<IpcReport, String> {
    if !share {
        unshare_or(
            CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS,
            "ipc+mnt, B",
        )?;
        refuse_in_host_ns("ipc")?;
        private_mounts()?;
    }
    // SAFETY: plain SysV calls on a key.
    let (sem, msg) = unsafe { (libc::semget(key, 1, 0), libc::msgget(key, 0)) };
    let (sem_lookup, msg_lookup) = (errno_of(sem), errno_of(msg));
    // SAFETY: as above.
    let own = unsafe { libc::semget(key, 1, libc::IPC_CREAT | 0o600) };
    Ok(IpcReport {
        sem_lookup,
        msg_lookup,
        b_own_sem: own >= 0 && (own != a_sem || sem < 0),
        mqueue_a: vec![],
        mqueue_b: mqueue_names(dir, !share)?,
    })
}

fn ipc_steps(key: i32, share: bool, dir: &str, queue: &str) -> Result<IpcReport, String> {
    unshare_or(
        CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS,
        "ipc+mnt, A",
    )?;
    refuse_in_host_ns("ipc")?;
    private_mounts()?;
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
    // SAFETY: plain SysV calls on a key, in this new ipc ns.
    let (sem, msg) = unsafe { (libc::semget(key, 1, flags), libc::msgget(key, flags)) };
    if sem < 0 || msg < 0 {
        return Err(format!(
            "semget/msgget in A: {sem} {msg}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let name = std::ffi::CString::new(queue).map_err(|e| e.to_string())?;
    super::other_ns::mq_create(&name).map_err(|e| format!("mq_open {queue}: {e}"))?;
    let mqueue_a = mqueue_names(dir, true)?;
    let mut r = match forked(|| b_side(key, sem, share, dir))? {
        Ended::Answered(r) => r?,
        other => return Err(format!("process B ended {other:?}")),
    };
    r.mqueue_a = mqueue_a;
    Ok(r)
}

/// `ipc-objects --key K --dir D --queue /NAME --share yes|no`: in a new
/// ipc ns A, a semaphore set and a message queue with key K and a POSIX
/// queue; B (a new ipc ns, or A itself with `yes`) looks them up; each
/// mounts its own mqueue fs on D (in its own mount ns) and lists it.
pub(super) fn op_ipc_objects(args: &[String]) -> i32 {
    let key = flag(args, "key").and_then(|k| k.parse().ok());
    let (Some(key), Some(dir), Some(queue)) = (key, flag(args, "dir"), flag(args, "queue")) else {
        return die("ipc-objects needs --key, --dir and --queue");
    };
    match ipc_steps(key, flag(args, "share") == Some("yes"), dir, queue) {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}
