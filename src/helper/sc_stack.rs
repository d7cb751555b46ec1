//! Seccomp ops written against the raw `seccomp(2)` interface (what the
//! kernel's own selftests use): who may install a filter, which action wins
//! among stacked filters, and the user-notification listener.

use super::{die, reply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// One classic-BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const SET_MODE_FILTER: libc::c_long = 1;
/// `SECCOMP_FILTER_FLAG_TSYNC`.
pub const FLAG_TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;

/// `SECCOMP_RET_*` actions, strongest first (the kernel's precedence).
pub const KILL_PROCESS: u32 = 0x8000_0000;
/// `SECCOMP_RET_TRAP`.
pub const TRAP: u32 = 0x0003_0000;
/// `SECCOMP_RET_ERRNO` (or the errno into it).
pub const ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_TRACE`.
pub const TRACE: u32 = 0x7ff0_0000;
/// `SECCOMP_RET_LOG`.
pub const LOG: u32 = 0x7ffc_0000;
/// `SECCOMP_RET_ALLOW`.
pub const ALLOW: u32 = 0x7fff_0000;

/// The filter every op here stacks: `action` for syscall `nr`, else allow.
pub fn filter_for(nr: libc::c_long, action: u32) -> [SockFilter; 4] {
    let i = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    [
        i(0x20, 0, 0, 0),         // ld [nr]
        i(0x15, 0, 1, nr as u32), // jeq nr
        i(0x06, 0, 0, action),    // ret action
        i(0x06, 0, 0, ALLOW),     // ret allow
    ]
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): its return value, or the errno.
pub fn install(prog: &[SockFilter], flags: u32) -> Result<i64, nix::errno::Errno> {
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: the program outlives the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            flags as libc::c_long,
            &fprog as *const SockFprog,
        )
    };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(r)
    }
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn no_new_privs() -> Result<(), String> {
    // SAFETY: plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// An errno as its name (`EACCES`), for replies.
pub fn errno_name(e: nix::errno::Errno) -> String {
    format!("{e:?}")
}

/// How a forked child ended: its JSON answer, or the signal / exit code.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Ended<T> {
    /// It wrote its answer.
    Answered(T),
    /// Killed by this signal before answering.
    Signaled(i32),
    /// Exited without an answer.
    Exited(i32),
}

/// Runs `f` in a forked child and returns what it wrote (JSON over a pipe).
pub fn forked<T: Serialize + DeserializeOwned>(f: impl FnOnce() -> T) -> Result<Ended<T>, String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded; the child ends in _exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(r);
            let out = serde_json::to_vec(&f()).unwrap_or_default();
            let mut w = std::fs::File::from(w);
            let _ = w.write_all(&out);
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut buf = Vec::new();
            let _ = std::fs::File::from(r).read_to_end(&mut buf);
            let ws = waitpid(child, None).map_err(|e| format!("waitpid: {e}"))?;
            if let Ok(v) = serde_json::from_slice(&buf) {
                return Ok(Ended::Answered(v));
            }
            Ok(match ws {
                WaitStatus::Signaled(_, s, _) => Ended::Signaled(s as i32),
                WaitStatus::Exited(_, c) => Ended::Exited(c),
                _ => Ended::Exited(-1),
            })
        }
    }
}

// ---------------------------------------------------------------------------
// sc-install-rules

/// Reply of `sc-install-rules`.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstallRules {
    /// Without no_new_privs (and, unless `--keep-caps`, as uid 65534): the errno of the install, None when it loaded.
    pub without_nnp: Option<String>,
    /// `CapEff:` of that process.
    pub without_nnp_cap_eff: String,
    /// With no_new_privs as uid 65534: the errno, None when it loaded.
    pub with_nnp: Option<String>,
    /// `Seccomp:` of each of three threads after a TSYNC install from one of them.
    pub tsync_threads: Vec<u32>,
    /// The same without TSYNC: only the installing thread is filtered.
    pub plain_threads: Vec<u32>,
}

fn drop_to_nobody() -> Result<(), String> {
    nix::unistd::setresuid(65534.into(), 65534.into(), 65534.into())
        .map_err(|e| format!("setresuid 65534: {e}"))
}

fn allow_all() -> [SockFilter; 4] {
    filter_for(libc::SYS_getppid, ALLOW)
}

fn try_install(unprivileged: bool, nnp: bool) -> (Option<String>, String) {
    if unprivileged {
        if let Err(e) = drop_to_nobody() {
            return (Some(e), String::new());
        }
    }
    if nnp {
        if let Err(e) = no_new_privs() {
            return (Some(e), String::new());
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap = crate::process::status_values(&status, "CapEff").join("");
    (install(&allow_all(), 0).err().map(errno_name), cap)
}

/// `Seccomp:` of every thread of this process.
fn thread_modes() -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        out.push(super::seccomp::status_field(&s, "Seccomp").unwrap_or(99));
    }
    out
}

/// Two parked threads, then a filter from the main thread with `flags`.
fn threads_after(flags: u32) -> Vec<u32> {
    for _ in 0..2 {
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    let started = crate::process::wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count()) == 3
    });
    if !started || no_new_privs().is_err() || install(&allow_all(), flags).is_err() {
        return vec![];
    }
    thread_modes()
}

/// `sc-install-rules [--keep-caps]`: installs an allow-all filter in
/// forked children: without no_new_privs (as uid 65534 unless
/// `--keep-caps`), with it, and with and without TSYNC beside two threads.
pub(super) fn op_install_rules(args: &[String]) -> i32 {
    let keep = args.iter().any(|a| a == "--keep-caps");
    let run = || -> Result<InstallRules, String> {
        let (without_nnp, without_nnp_cap_eff) = answer(forked(|| try_install(!keep, false))?)?;
        let (with_nnp, _) = answer(forked(|| try_install(true, true))?)?;
        Ok(InstallRules {
            without_nnp,
            without_nnp_cap_eff,
            with_nnp,
            tsync_threads: answer(forked(|| threads_after(FLAG_TSYNC))?)?,
            plain_threads: answer(forked(|| threads_after(0))?)?,
        })
    };
    match run() {
        Ok(r) => reply(&r),
        Err(e) => die(e),
    }
}

fn answer<T: std::fmt::Debug>(e: Ended<T>) -> Result<T, String> {
    match e {
        Ended::Answered(v) => Ok(v),
        other => Err(format!("a probe child ended without answering: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// sc-precedence

static TRAPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigsys(_: libc::c_int) {
    TRAPPED.store(true, Ordering::SeqCst);
}

/// The actions `sc-precedence` stacks, strongest first, by name.
pub const PRECEDENCE: &[(&str, u32)] = &[
    ("kill", KILL_PROCESS),
    ("trap", TRAP),
    ("errno", ERRNO | ERRNO_PAIR as u32),
    ("trace", TRACE),
    ("log", LOG),
    ("allow", ALLOW),
];

/// The errno the ERRNO filter of the pairs returns (EDOM: no syscall here
/// gives it by itself, unlike ENOSYS, which TRACE without a tracer gives).
pub const ERRNO_PAIR: i32 = libc::EDOM;

/// What getppid(2) did under the stacked filters, as one word:
/// `kill`, `trap`, `errno:N`, or `allowed`.
fn probe_getppid(actions: &[u32]) -> String {
    // SAFETY: a plain handler that only stores an atomic.
    unsafe { libc::signal(libc::SIGSYS, on_sigsys as *const () as libc::sighandler_t) };
    for a in actions {
        if let Err(e) = install(&filter_for(libc::SYS_getppid, *a), 0) {
            return format!("install failed: {e}");
        }
    }
    // SAFETY: a raw getppid; the filters decide what it does.
    let r = unsafe { libc::syscall(libc::SYS_getppid) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if TRAPPED.load(Ordering::SeqCst) {
        "trap".into()
    } else if r < 0 {
        format!("errno:{errno}")
    } else {
        "allowed".into()
    }
}

/// One stacked install and what it gave.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stacked {
    /// The actions' names in install order.
    pub installed: Vec<String>,
    /// `kill`, `trap`, `errno:N` or `allowed`.
    pub result: String,
}

/// Installs `actions` (name, value) in order in a fresh child; a SIGSYS death is `kill`.
pub fn stacked(actions: &[(&str, u32)]) -> Result<Stacked, String> {
    let vals: Vec<u32> = actions.iter().map(|a| a.1).collect();
    let result = match forked(|| probe_getppid(&vals))? {
        Ended::Answered(s) => s,
        Ended::Signaled(s) if s == libc::SIGSYS => "kill".into(),
        other => format!("ended {other:?}"),
    };
    Ok(Stacked {
        installed: actions.iter().map(|a| a.0.to_string()).collect(),
        result,
    })
}

/// `sc-precedence --sets JSON`: each set is a list of action names (or
/// `errno:N`) installed in order in its own child; replies the results.
pub(super) fn op_precedence(args: &[String]) -> i32 {
    let Some(sets) = args.windows(2).find(|w| w[0] == "--sets").map(|w| &w[1]) else {
        return die("missing --sets");
    };
    let sets: Vec<Vec<String>> = match serde_json::from_str(sets) {
        Ok(s) => s,
        Err(e) => return die(format!("--sets: {e}")),
    };
    let mut out = Vec::new();
    for set in &sets {
        let mut acts = Vec::new();
        for name in set {
            let v = match name
                .strip_prefix("errno:")
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(n) => ERRNO | n,
                None => match PRECEDENCE.iter().find(|p| p.0 == name) {
                    Some(p) => p.1,
                    None => return die(format!("unknown action {name:?}")),
                },
            };
            acts.push((name.as_str(), v));
        }
        match stacked(&acts) {
            Ok(s) => out.push(s),
            Err(e) => return die(e),
        }
    }
    reply(&out)
}

/// Takes ownership of a listener fd the kernel returned.
pub fn owned(fd: i64) -> OwnedFd {
    // SAFETY: a fresh fd from seccomp(2), owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The raw fd of an owned one.
pub fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}
