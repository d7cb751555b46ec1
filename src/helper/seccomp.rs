//! Seccomp ops: load filters or a Docker-format profile into a
//! single-threaded child, then exec, or probe what the filter lets through.

use super::{die, exec, reply, status_code};
use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, Ordering};
use std::time::Duration;
/// A numeric `Key:` field of a /proc/PID/status text (`Seccomp`,
/// `Seccomp_filters`).
pub fn status_field(status: &str, key: &str) -> Option<u32> {
    let values = crate::process::status_values(status, key);
    match values.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    }
}

/// Reply of `seccomp-thread ACTION`, printed unless the exec replaced or
/// killed the whole process.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadReport {
    /// The execve returned or the thread vanished within the bound.
    pub settled: bool,
    /// The execve came back (the filter returned an errno instead of killing).
    pub returned: bool,
    /// execve's return value when it returned (-1).
    pub ret: i64,
    /// The errno execve set when it returned; 0 otherwise.
    pub errno: i32,
    /// The SIGSYS handler ran, and what its siginfo said.
    pub trapped: bool,
    /// siginfo's `si_code` (SYS_SECCOMP, 1, for a seccomp trap).
    pub si_code: i32,
    /// siginfo's `si_syscall`: the number of the trapped syscall.
    pub si_syscall: i32,
    /// siginfo's `si_arch`: the `AUDIT_ARCH_*` of the trapped call.
    pub si_arch: u32,
    /// The thread left /proc/self/task: killed alone (`KillThread`) while the process lives.
    pub thread_gone: bool,
    /// Always true: the main thread lived to print this.
    pub main_alive: bool,
}

/// Reply of `seccomp-probe`: this process's filter mode and what it let
/// through (errno of each call, 0: allowed).
#[derive(Debug, Serialize, Deserialize)]
pub struct Probe {
    /// `Seccomp:` of /proc/self/status (0 off, 1 strict, 2 filter); None if the kernel omits it.
    pub seccomp: Option<u32>,
    /// `Seccomp_filters:` of /proc/self/status; None on kernels that do not print it.
    pub seccomp_filters: Option<u32>,
    /// uname(2)'s errno, 0 when allowed.
    pub uname_errno: i32,
    /// setns(2) into its own UTS namespace: errno, 0 when allowed.
    pub setns_errno: i32,
    /// clone(2) with no namespace flags: errno, 0 when allowed.
    pub clone_plain_errno: i32,
    /// clone(2) with CLONE_NEWUSER: errno, 0 when allowed (Docker's profile filters clone's flags).
    pub clone_newuser_errno: i32,
    /// unshare(CLONE_NEWUSER): errno, 0 when allowed; tried last as it moves the process.
    pub unshare_errno: i32,
}

fn no_core_self() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

fn parse_action(s: &str) -> Result<ScmpAction, String> {
    Ok(match s {
        "kill-process" => ScmpAction::KillProcess,
        "kill-thread" => ScmpAction::KillThread,
        "trap" => ScmpAction::Trap,
        "errno" => ScmpAction::Errno(libc::EPERM),
        // A sandbox that fakes success: the harness's own host-safety test.
        "errno0" => ScmpAction::Errno(0),
        "log" => ScmpAction::Log,
        other => return Err(format!("unknown action {other:?}")),
    })
}

/// Default allow, `syscall -> action` for each rule; loaded into this process.
fn load_rules(rules: &[(String, ScmpAction)]) -> Result<(), String> {
    let mut f = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| e.to_string())?;
    for (s, a) in rules {
        let nr = ScmpSyscall::from_name(s).map_err(|e| format!("syscall {s}: {e}"))?;
        f.add_rule(*a, nr).map_err(|e| format!("rule {s}: {e}"))?;
    }
    f.load().map_err(|e| format!("seccomp_load: {e}"))
}

/// `seccomp-exec [--rule SYSCALL=ACTION]… [--wait] [--fork] -- CMD…`: loads
/// the rules (none: no filter at all), optionally prints `ready` and waits
/// for a line on stdin, optionally forks, then execs CMD.
pub(super) fn op_seccomp_exec(args: &[String]) -> i32 {
    let mut rules = Vec::new();
    let (mut wait, mut do_fork) = (false, false);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--rule" => {
                i += 1;
                let Some((s, a)) = args.get(i).and_then(|r| r.split_once('=')) else {
                    return die("--rule needs SYSCALL=ACTION");
                };
                match parse_action(a) {
                    Ok(a) => rules.push((s.to_string(), a)),
                    Err(e) => return die(e),
                }
            }
            "--wait" => wait = true,
            "--fork" => do_fork = true,
            "--" => break,
            other => return die(format!("seccomp-exec: unknown option {other}")),
        }
        i += 1;
    }
    let cmd = args.get(i + 1..).unwrap_or_default();
    no_core_self();
    if !rules.is_empty() {
        if let Err(e) = load_rules(&rules) {
            return die(e);
        }
    }
    if wait {
        println!("ready");
        let _ = std::io::stdout().flush();
        let mut l = String::new();
        let _ = std::io::stdin().read_line(&mut l);
    }
    if !do_fork {
        return exec(cmd);
    }
    // SAFETY: single-threaded helper.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => exec(cmd),
        Ok(ForkResult::Parent { child }) => waitpid(child, None).map(status_code).unwrap_or(125),
        Err(e) => die(format!("fork: {e}")),
    }
}

static TRAPPED: AtomicBool = AtomicBool::new(false);
static SI_CODE: AtomicI32 = AtomicI32::new(0);
static SI_SYSCALL: AtomicI32 = AtomicI32::new(-1);
static SI_ARCH: AtomicU32 = AtomicU32::new(0);
static THREAD_TID: AtomicI32 = AtomicI32::new(0);
static RETURNED: AtomicBool = AtomicBool::new(false);
static RET: AtomicI64 = AtomicI64::new(0);
static ERRNO: AtomicI32 = AtomicI32::new(0);

/// The SIGSYS member of `siginfo_t` (`_sigsys` in the kernel's union), which
/// the libc crate does not expose. `repr(C)` places the union after the three
/// ints at pointer alignment, as the kernel does.
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let i = unsafe { &*(info as *const SigsysInfo) };
    SI_CODE.store(i.code, Ordering::SeqCst);
    SI_SYSCALL.store(i.syscall, Ordering::SeqCst);
    SI_ARCH.store(i.arch, Ordering::SeqCst);
    TRAPPED.store(true, Ordering::SeqCst);
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Installs `on_sigsys`; false if sigaction failed.
fn catch_sigsys() -> bool {
    // SAFETY: a plain sigaction with an async-signal-safe handler (atomics).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) == 0
    }
}

/// The second thread of `seccomp-thread`: records its tid, then a raw
/// execve of a shell; records what execve returned, if it does.
fn exec_from_thread() {
    // SAFETY: gettid and a raw execve with NUL-terminated arrays.
    unsafe {
        THREAD_TID.store(libc::gettid(), Ordering::SeqCst);
        let argv = [
            c"sh".as_ptr(),
            c"-c".as_ptr(),
            // The shell, once exec'd, reads its own `Seccomp:` with
            // builtins only (a second exec would meet the filter again).
            c"while read -r k v; do case $k in Seccomp:) echo \"seccomp=$v\";; esac; done < /proc/self/status; echo exec-ran".as_ptr(),
            std::ptr::null(),
        ];
        let r = libc::syscall(
            libc::SYS_execve,
            c"/bin/sh".as_ptr(),
            argv.as_ptr(),
            environ,
        );
        let e = *libc::__errno_location();
        RET.store(r, Ordering::SeqCst);
        ERRNO.store(if r == -1 { e } else { 0 }, Ordering::SeqCst);
    }
    RETURNED.store(true, Ordering::SeqCst);
}

/// `seccomp-thread ACTION`: execve → ACTION, then a second thread calls
/// execve("/bin/sh", "echo exec-ran") while the main thread watches. Prints
/// one JSON line unless the exec replaced or killed the process.
pub(super) fn op_seccomp_thread(args: &[String]) -> i32 {
    let action = match args.first().map(|a| parse_action(a)) {
        Some(Ok(a)) => a,
        Some(Err(e)) => return die(e),
        None => return die("seccomp-thread needs an action"),
    };
    no_core_self();
    if !catch_sigsys() {
        return die("sigaction(SIGSYS)");
    }
    if let Err(e) = load_rules(&[("execve".into(), action)]) {
        return die(e);
    }
    // Threads created after the load inherit the filter.
    let t = std::thread::spawn(exec_from_thread);
    let gone = |tid: i32| tid > 0 && !Path::new(&format!("/proc/self/task/{tid}")).exists();
    let settled = crate::process::wait_until(Duration::from_secs(10), || {
        RETURNED.load(Ordering::SeqCst) || gone(THREAD_TID.load(Ordering::SeqCst))
    });
    let returned = RETURNED.load(Ordering::SeqCst);
    let tid = THREAD_TID.load(Ordering::SeqCst);
    if returned {
        let _ = t.join();
        // join() returns when the kernel clears the thread's tid, before it
        // leaves /proc/self/task: wait for that, so thread_gone is a fact
        // of the action and not of who won the race.
        crate::process::wait_until(Duration::from_secs(5), || gone(tid));
    } else {
        // A killed thread never finishes its closure: joining would panic.
        std::mem::forget(t);
    }
    reply(&ThreadReport {
        settled,
        returned,
        ret: RET.load(Ordering::SeqCst),
        errno: ERRNO.load(Ordering::SeqCst),
        trapped: TRAPPED.load(Ordering::SeqCst),
        si_code: SI_CODE.load(Ordering::SeqCst),
        si_syscall: SI_SYSCALL.load(Ordering::SeqCst),
        si_arch: SI_ARCH.load(Ordering::SeqCst),
        thread_gone: gone(tid),
        main_alive: true,
    })
}

/// `seccomp-profile (--profile FILE [--caps SPEC] | --unconfined) -- CMD…`:
/// applies a Docker-format profile (nothing when it does not compile) and
/// execs CMD.
pub(super) fn op_seccomp_profile(args: &[String]) -> i32 {
    let mut profile: Option<String> = None;
    let mut caps = "docker-default".to_string();
    let mut unconfined = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--profile" => {
                i += 1;
                profile = args.get(i).cloned();
            }
            "--caps" => {
                i += 1;
                caps = args.get(i).cloned().unwrap_or_default();
            }
            "--unconfined" => unconfined = true,
            "--" => break,
            other => return die(format!("seccomp-profile: unknown option {other}")),
        }
        i += 1;
    }
    let cmd = args.get(i + 1..).unwrap_or_default();
    match (profile, unconfined) {
        (None, true) => exec(cmd),
        (Some(p), false) => {
            let caps = match crate::seccomp::Caps::parse(&caps) {
                Ok(c) => c,
                Err(e) => return die(e),
            };
            let env = crate::seccomp::Env {
                caps,
                ..crate::seccomp::Env::host()
            };
            let compiled = match crate::seccomp::load_file(Path::new(&p), &env) {
                Ok(c) => c,
                Err(e) => return die(format!("profile {p}: {e}")),
            };
            if let Err(e) = compiled.load() {
                return die(format!("profile {p}: {e}"));
            }
            exec(cmd)
        }
        _ => die("seccomp-profile needs exactly one of --profile FILE or --unconfined"),
    }
}

fn errno_of(r: libc::c_long) -> i32 {
    if r == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// Raw clone(2) with `flags`; the child exits at once. Returns errno (0: ok).
fn try_clone(flags: libc::c_long) -> i32 {
    // SAFETY: no CLONE_VM: the child is a copy that only calls _exit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_long,
            0,
            0,
            0,
            0,
        )
    };
    if r == 0 {
        // SAFETY: leaving the child at once.
        unsafe { libc::_exit(0) };
    }
    if r > 0 {
        let _ = waitpid(nix::unistd::Pid::from_raw(r as i32), None);
    }
    errno_of(r)
}

/// `seccomp-probe`: what this process's filter lets through, as JSON.
pub(super) fn op_seccomp_probe(_args: &[String]) -> i32 {
    let mode = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.seccomp);
    let filters = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field(&s, "Seccomp_filters"));
    let uname_errno = match nix::sys::utsname::uname() {
        Ok(_) => 0,
        Err(e) => e as i32,
    };
    let setns_errno = match std::fs::File::open("/proc/self/ns/uts") {
        Ok(f) => match nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWUTS) {
            Ok(()) => 0,
            Err(e) => e as i32,
        },
        Err(e) => e.raw_os_error().unwrap_or(-1),
    };
    let clone_plain_errno = try_clone(0);
    let clone_newuser_errno = try_clone(libc::CLONE_NEWUSER as libc::c_long);
    // Last: it moves this process into a new user namespace.
    let unshare_errno = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0,
        Err(e) => e as i32,
    };
    reply(&Probe {
        seccomp: mode,
        seccomp_filters: filters,
        uname_errno,
        setns_errno,
        clone_plain_errno,
        clone_newuser_errno,
        unshare_errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("kill-process", Ok(ScmpAction::KillProcess))]
    #[case("errno", Ok(ScmpAction::Errno(libc::EPERM)))]
    #[case("kill", Err(()))]
    fn actions_by_name(#[case] s: &str, #[case] want: Result<ScmpAction, ()>) {
        assert_eq!(parse_action(s).map_err(|_| ()), want);
    }
}
