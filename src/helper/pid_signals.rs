//! `pidns-cross`: signals across the pid-namespace boundary (LTP pidns06,
//! pidns10, pidns16), from a namespace init forked for it.

use super::sc_stack::{forked, Ended};
use super::{die, reply};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Reply of `pidns-cross`: what the (namespace) init saw.
#[derive(Debug, Serialize, Deserialize)]
pub struct CrossSignals {
    /// Its own pid (1 in a new pid namespace).
    pub my_pid: i32,
    /// kill(VICTIM, SIGKILL) of the process outside: errno, None when sent.
    pub kill_outside: Option<String>,
    /// kill(-1, SIGKILL) as a lone namespace init: errno, None when sent;
    /// not tried without a new namespace (it would signal the host).
    pub kill_all: Option<Option<String>>,
    /// si_pid of SIGUSR1 sent by its parent (in the parent namespace).
    pub si_pid_from_parent: i32,
    /// si_pid of SIGUSR2 sent by a child of its own.
    pub si_pid_from_child: i32,
    /// That child's pid as fork(2) returned it here.
    pub child_pid: i32,
}

extern "C" fn noop(_: libc::c_int) {}

/// A handler (an init drops signals whose action is the default) and
/// blocked, so sigtimedwait collects them with their siginfo.
fn catch(sigs: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for s in sigs {
        // SAFETY: a handler that does nothing.
        unsafe { libc::signal(*s as i32, noop as *const () as libc::sighandler_t) };
        set.add(*s);
    }
    let _ = set.thread_block();
    set
}

fn wait_si_pid(sig: Signal) -> i32 {
    let mut set = SigSet::empty();
    set.add(sig);
    let t = libc::timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    // SAFETY: zeroed siginfo filled by the kernel.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        if libc::sigtimedwait(set.as_ref(), &mut info, &t) < 0 {
            return -1;
        }
        info.si_pid()
    }
}

fn errno_of(r: nix::Result<()>) -> Option<String> {
    r.err().map(|e| format!("{e:?}"))
}

/// kill(-1, SIGKILL), only once proven the init of a pid ns that is not
/// the run's: from the run's own namespace (an unshare that silently did
/// nothing) it would kill every process the caller may signal.
fn kill_all_as_lone_init() -> Option<String> {
    if nix::unistd::getpid().as_raw() != 1 {
        return Some("refused: not pid 1 of a new pid namespace".into());
    }
    if let Err(e) = super::refuse_in_host_ns("pid") {
        return Some(e);
    }
    errno_of(kill(Pid::from_raw(-1), Signal::SIGKILL))
}

/// The init's side: signals out, then waits for the parent's and a child's.
fn init_side(victim: i32, new_ns: bool, mut ready: std::fs::File) -> CrossSignals {
    catch(&[Signal::SIGUSR1, Signal::SIGUSR2]);
    let kill_outside = errno_of(kill(Pid::from_raw(victim), Signal::SIGKILL));
    let kill_all = new_ns.then(kill_all_as_lone_init);
    let _ = ready.write_all(b"r");
    drop(ready);
    let si_pid_from_parent = wait_si_pid(Signal::SIGUSR1);
    let me = nix::unistd::getpid();
    // SAFETY: the child only signals and exits.
    let child_pid = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = kill(me, Signal::SIGUSR2);
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Err(_) => -1,
    };
    let si_pid_from_child = wait_si_pid(Signal::SIGUSR2);
    let _ = nix::sys::wait::waitpid(Pid::from_raw(child_pid), None);
    CrossSignals {
        my_pid: me.as_raw(),
        kill_outside,
        kill_all,
        si_pid_from_parent,
        si_pid_from_child,
        child_pid,
    }
}

/// In a forked child: (a new pid ns and) the init, signalled once it is ready.
fn cross(victim: i32, new_ns: bool) -> Result<CrossSignals, String> {
    if new_ns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| format!("unshare(CLONE_NEWPID): {e}"))?;
    }
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let (mut r, w) = (std::fs::File::from(r), std::fs::File::from(w));
    let (rr, rw) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: single-threaded; the child ends in _exit.
    let init = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop((r, rr));
            let out = serde_json::to_vec(&init_side(victim, new_ns, w)).unwrap_or_default();
            let _ = std::fs::File::from(rw).write_all(&out);
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((w, rw));
    let mut b = [0u8; 1];
    if r.read(&mut b).ok() != Some(1) {
        return Err("the init died before it was ready".into());
    }
    kill(init, Signal::SIGUSR1).map_err(|e| format!("SIGUSR1 to the init: {e}"))?;
    let mut out = Vec::new();
    let _ = std::fs::File::from(rr).read_to_end(&mut out);
    let _ = nix::sys::wait::waitpid(init, None);
    serde_json::from_slice(&out).map_err(|e| format!("the init's report: {e}"))
}

/// `pidns-cross --victim PID --newns yes|no`: a (namespace) init signals
/// PID and -1, then reports the si_pid of a signal from its parent and one
/// from its own child.
pub(super) fn op_cross(args: &[String]) -> i32 {
    let get = |k: &str| args.windows(2).find(|w| w[0] == k).map(|w| w[1].clone());
    let Some(victim) = get("--victim")
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v > 1)
    else {
        return die("pidns-cross --victim PID --newns yes|no");
    };
    let new_ns = get("--newns").as_deref() == Some("yes");
    match forked(|| cross(victim, new_ns)) {
        Ok(Ended::Answered(Ok(r))) => reply(&r),
        Ok(Ended::Answered(Err(e))) => die(e),
        Ok(other) => die(format!("the pid-ns child ended {other:?}")),
        Err(e) => die(e),
    }
}
