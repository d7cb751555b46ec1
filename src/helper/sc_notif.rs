//! `sc-notif`: a `SECCOMP_RET_USER_NOTIF` listener and the pid it is told
//! (kselftest seccomp_bpf user_notification_*): the listener and the task
//! in one pid namespace, or in two sibling ones.

use super::sc_stack::{
    errno_name, filter_for, install, no_new_privs, owned, FLAG_NEW_LISTENER, USER_NOTIF,
};
use super::{die, reply};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct Resp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const IOCTL_RECV: libc::c_ulong = 0xc050_2100;
const IOCTL_SEND: libc::c_ulong = 0xc018_2101;

/// Reply of `sc-notif`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NotifReport {
    /// Listener and task were put in sibling pid namespaces.
    pub sibling: bool,
    /// The task's pid as its parent (in the listener's namespace when not sibling) sees it.
    pub task_pid: i32,
    /// `req.pid` the listener received.
    pub req_pid: u32,
    /// `req.data.nr`: the notified syscall.
    pub req_nr: i32,
    /// A second NEW_LISTENER filter on the same chain: its errno, None when it loaded.
    pub second_listener: Option<String>,
    /// SECCOMP_IOCTL_NOTIF_SEND after the task was killed: its errno, None when accepted.
    pub send_after_death: Option<String>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))
}

fn unshare_pid(on: bool) -> Result<(), String> {
    if on {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| format!("unshare(CLONE_NEWPID): {e}"))?;
    }
    Ok(())
}

/// The listener's side: receive one notification, report `pid nr`, wait
/// for the word that the task is dead, answer, report the answer's errno.
fn listen(fd: &OwnedFd, report: OwnedFd, go: OwnedFd) -> i32 {
    let mut out = std::fs::File::from(report);
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd; a bounded wait.
    if unsafe { libc::poll(&mut pfd, 1, 10_000) } != 1 {
        let _ = writeln!(out, "no notification within 10 s");
        return 1;
    }
    let mut n = Notif::default();
    // SAFETY: RECV fills the zeroed struct of the kernel's size.
    if unsafe { libc::ioctl(fd.as_raw_fd(), IOCTL_RECV, &mut n as *mut Notif) } != 0 {
        let _ = writeln!(out, "RECV: {}", std::io::Error::last_os_error());
        return 1;
    }
    let _ = writeln!(out, "{} {}", n.pid, n.nr);
    let mut b = [0u8; 1];
    let _ = std::fs::File::from(go).read(&mut b);
    let resp = Resp {
        id: n.id,
        val: 0,
        error: 0,
        flags: 0,
    };
    // SAFETY: SEND reads the response struct.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), IOCTL_SEND, &resp as *const Resp) };
    let e = if r == 0 {
        "ok".to_string()
    } else {
        errno_name(nix::errno::Errno::last())
    };
    let _ = writeln!(out, "{e}");
    0
}

/// Forks the listener (in a new pid ns when `sibling`, through a middle child).
fn start_listener(
    fd: &OwnedFd,
    sibling: bool,
) -> Result<(Pid, std::fs::File, std::fs::File), String> {
    let (rr, rw) = pipe()?;
    let (gr, gw) = pipe()?;
    // SAFETY: single-threaded; the children end in _exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop((rr, gw));
            let code = match unshare_pid(sibling) {
                Err(_) => 2,
                // SAFETY: as above.
                Ok(()) => match unsafe { fork() } {
                    Ok(ForkResult::Child) => listen(fd, rw, gr),
                    Ok(ForkResult::Parent { child }) => {
                        drop((rw, gr));
                        waitpid(child, None).map_or(3, |_| 0)
                    }
                    Err(_) => 4,
                },
            };
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            Ok((child, std::fs::File::from(rr), std::fs::File::from(gw)))
        }
    }
}

fn line(r: &mut std::fs::File) -> String {
    let mut s = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = r.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        s.push(b[0]);
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn notif_case(sibling: bool) -> Result<NotifReport, String> {
    no_new_privs()?;
    let fd = owned(
        install(
            &filter_for(libc::SYS_getppid, USER_NOTIF),
            FLAG_NEW_LISTENER,
        )
        .map_err(|e| format!("NEW_LISTENER filter: {e}"))?,
    );
    let second_listener = install(&filter_for(libc::SYS_getpid, USER_NOTIF), FLAG_NEW_LISTENER)
        .err()
        .map(errno_name);
    let (listener, mut report, mut go) = start_listener(&fd, sibling)?;
    unshare_pid(sibling)?;
    // SAFETY: single-threaded; the task only makes the notified call.
    let task = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => unsafe {
            libc::syscall(libc::SYS_getppid);
            libc::_exit(0)
        },
        ForkResult::Parent { child } => child,
    };
    let got = line(&mut report);
    let _ = kill(task, Signal::SIGKILL);
    let _ = waitpid(task, None);
    let _ = go.write_all(b"x");
    let send = line(&mut report);
    let _ = waitpid(listener, None);
    let (pid, nr) = got
        .split_once(' ')
        .and_then(|(p, n)| Some((p.parse().ok()?, n.parse().ok()?)))
        .ok_or_else(|| format!("listener: {got}"))?;
    Ok(NotifReport {
        sibling,
        task_pid: task.as_raw(),
        req_pid: pid,
        req_nr: nr,
        second_listener,
        send_after_death: (send != "ok").then_some(send),
    })
}

/// `sc-notif --sibling yes|no`: in a forked child (the filter and the pid
/// namespaces stay out of this process), a listener and a task making one
/// notified getppid(2); replies what the listener saw.
pub(super) fn op_notif(args: &[String]) -> i32 {
    let sibling = args
        .windows(2)
        .any(|w| w[0] == "--sibling" && w[1] == "yes");
    match super::sc_stack::forked(|| notif_case(sibling).map_err(|e| e.to_string())) {
        Ok(super::sc_stack::Ended::Answered(Ok(r))) => reply(&r),
        Ok(super::sc_stack::Ended::Answered(Err(e))) => die(e),
        Ok(other) => die(format!("the notification child ended {other:?}")),
        Err(e) => die(e),
    }
}
