//! Pid-namespace ops: single-threaded children that may fork freely.

use super::{die, reply, status_code};
use crate::namespaces;
use crate::process::{is_running, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Reply of `pidns-init-death`: the ns init is killed while two members
/// live; what became of them and of a later fork into the namespace.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitDeath {
    /// Members (init and its children) counted before init was killed.
    pub members_before: usize,
    /// How init died, as waitpid described it (`killed by SIGKILL`).
    pub init_status: String,
    /// Every earlier member vanished within 5 s: the kernel kills the namespace with its init.
    pub all_gone: bool,
    /// Host pids of members still running after the bound; empty when all died.
    pub members_alive_after: Vec<i32>,
    /// The result of forking after init died: `succeeded`, or the errno (ENOMEM is what the kernel gives).
    pub fork_after: String,
}

/// Reply of `pidns-signals init|child`: whether the target survived
/// unhandled signals from inside and from the parent namespace.
#[derive(Debug, Serialize, Deserialize)]
pub struct Signals {
    /// `init` or `child`: which process of the namespace received the signals.
    pub target: String,
    /// The target answered after SIGTERM and SIGKILL sent from inside (init ignores unhandled ones).
    pub survived_term_kill_from_inside: bool,
    /// The target answered after a SIGTERM from the parent namespace.
    pub survived_term_from_parent_ns: bool,
    /// What became of the target after a SIGKILL from the parent namespace (`killed by SIGKILL`, or `alive`).
    pub sigkill_from_parent_ns: String,
}

/// Reply of `pidns-orphan`: the orphan's parent as seen inside (by
/// getppid) and from the host (by its NSpid), beside the ns init's host pid.
#[derive(Debug, Serialize, Deserialize)]
pub struct Orphan {
    /// The orphan's pid inside the namespace, as it printed it; None if it printed nothing.
    pub orphan_ns_pid: Option<i64>,
    /// The orphan's getppid() inside: 1 once the namespace's init adopted it.
    pub orphan_ppid_inside: Option<i64>,
    /// The namespace init's pid in the host's namespace.
    pub init_host_pid: i32,
    /// The orphan's host pid, found by its NSpid; None if not found.
    pub orphan_host_pid: Option<i32>,
    /// The orphan's parent seen from the host: the init's host pid once adopted.
    pub orphan_host_ppid: Option<i32>,
}

fn describe(ws: nix::Result<WaitStatus>) -> String {
    match ws {
        Ok(WaitStatus::Exited(_, c)) => format!("exited {c}"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s:?}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn unshare_pid() -> Result<(), i32> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| die(format!("unshare(CLONE_NEWPID): {e}")))
}

/// Blocks forever; the process only leaves by a signal.
fn park() -> ! {
    loop {
        nix::unistd::pause();
    }
}

pub(super) fn op_init_death(_args: &[String]) -> i32 {
    if let Err(c) = unshare_pid() {
        return c;
    }
    let init = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            for _ in 0..2 {
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    park();
                }
            }
            park();
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return status_code(WaitStatus::Exited(Pid::from_raw(0), e as i32)),
    };
    let members = || {
        let mut m = vec![init.as_raw()];
        m.extend(crate::process::children_of(init.as_raw()));
        m
    };
    wait_until(Duration::from_secs(5), || members().len() >= 3);
    let before = members();
    let _ = kill(init, Signal::SIGKILL);
    let init_status = describe(waitpid(init, None));
    let gone = wait_until(Duration::from_secs(5), || {
        before.iter().all(|p| !is_running(*p))
    });
    let still: Vec<i32> = before.iter().copied().filter(|p| is_running(*p)).collect();
    let fork_after = match unsafe { fork() } {
        Ok(ForkResult::Child) => std::process::exit(0),
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
            "succeeded".to_string()
        }
        Err(e) => format!("{e:?}"),
    };
    reply(&InitDeath {
        members_before: before.len(),
        init_status,
        all_gone: gone,
        members_alive_after: still,
        fork_after,
    })
}

/// Target loop: on each byte from `cmd`, fork a sibling that sends SIGTERM
/// then SIGKILL to the target (its parent), reap it, and answer on `resp`.
/// A target that did not survive never answers.
fn responder(cmd: std::os::fd::OwnedFd, resp: std::os::fd::OwnedFd) -> ! {
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&cmd), &mut b) {
            Ok(1) => {}
            _ => std::process::exit(0),
        }
        if b[0] == b's' {
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                let target = getppid();
                let _ = kill(target, Signal::SIGTERM);
                let _ = kill(target, Signal::SIGKILL);
                std::process::exit(0);
            }
            let _ = nix::sys::wait::wait();
        }
        let _ = nix::unistd::write(&resp, b"a");
    }
}

/// The init of `pidns-signals`' namespace: the responder itself when it
/// is the target, else the parent of a responder child, reaping until the
/// namespace is empty.
fn signals_ns_init(
    target_is_init: bool,
    cmd: std::os::fd::OwnedFd,
    resp: std::os::fd::OwnedFd,
) -> ! {
    if target_is_init {
        responder(cmd, resp);
    }
    if let Ok(ForkResult::Child) = unsafe { fork() } {
        responder(cmd, resp);
    }
    drop(cmd);
    drop(resp);
    while nix::sys::wait::wait().is_ok() {}
    std::process::exit(0);
}

/// The first child of `init`, waited for (bounded).
fn first_child(init: Pid) -> Option<Pid> {
    wait_until(Duration::from_secs(5), || {
        !crate::process::children_of(init.as_raw()).is_empty()
    });
    let kids = crate::process::children_of(init.as_raw());
    kids.first().map(|p| Pid::from_raw(*p))
}

/// `pidns-signals init|child`: whether the target of a new pid namespace
/// survives SIGTERM and SIGKILL sent from inside, SIGTERM from the parent
/// namespace, and dies of SIGKILL from there.
pub(super) fn op_signals(args: &[String]) -> i32 {
    let target_is_init = args.first().map(String::as_str) != Some("child");
    let (cmd_r, cmd_w) = nix::unistd::pipe().expect("pipe");
    let (resp_r, resp_w) = nix::unistd::pipe().expect("pipe");
    if let Err(c) = unshare_pid() {
        return c;
    }
    let init = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(cmd_w);
            drop(resp_r);
            signals_ns_init(target_is_init, cmd_r, resp_w)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return die(format!("fork: {e}")),
    };
    drop(cmd_r);
    drop(resp_w);
    let target = if target_is_init {
        init
    } else {
        match first_child(init) {
            Some(p) => p,
            None => return die("the ns init never forked its child"),
        }
    };
    let ask = |c: u8| -> bool {
        let mut b = [0u8; 1];
        nix::unistd::write(&cmd_w, &[c]).is_ok()
            && matches!(
                nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&resp_r), &mut b),
                Ok(1)
            )
    };
    // The answer (or EOF, once the target is dead) proves the outcome
    // without any timeout.
    let inside = ask(b's');
    let _ = kill(target, Signal::SIGTERM);
    let after_term = inside && ask(b'p');
    let _ = kill(target, Signal::SIGKILL);
    let sigkill = if target == init {
        describe(waitpid(init, None))
    } else {
        wait_until(Duration::from_secs(5), || !is_running(target.as_raw()));
        if is_running(target.as_raw()) {
            "alive".into()
        } else {
            "killed by SIGKILL".to_string()
        }
    };
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    reply(&Signals {
        target: if target_is_init { "init" } else { "child" }.into(),
        survived_term_kill_from_inside: inside,
        survived_term_from_parent_ns: after_term,
        sigkill_from_parent_ns: sigkill,
    })
}

/// The host pid and `PPid:` of the process whose innermost `NSpid` is
/// `ns_pid`, among (host pid, /proc status text) pairs of one pid ns.
pub fn find_by_nspid(statuses: &[(i32, String)], ns_pid: i32) -> Option<(i32, i32)> {
    statuses.iter().find_map(|(pid, text)| {
        let nspid = namespaces::parse_nspid(text)?;
        if nspid.len() < 2 || nspid.last() != Some(&ns_pid) {
            return None;
        }
        let ppid = text
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()?;
        Some((*pid, ppid))
    })
}

/// The init of `pidns-orphan`'s namespace: forks a middle process that
/// forks the orphan-to-be and exits; the orphan writes `NSPID PPID` on `w`
/// once reparented. The init reaps the middle process and stays.
fn orphan_ns_init(w: std::os::fd::OwnedFd) -> ! {
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let mid = getpid();
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                while getppid() == mid {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let msg = format!("{} {}\n", getpid(), getppid());
                let _ = nix::unistd::write(&w, msg.as_bytes());
                park();
            }
            std::process::exit(0);
        }
        _ => {
            drop(w);
            loop {
                if nix::sys::wait::wait().is_err() {
                    park();
                }
            }
        }
    }
}

/// (host pid, /proc status text) of every process in `pid`'s pid
/// namespace: the orphan as a user finds it is the one whose NSpid ends in
/// the pid it printed.
fn statuses_in_pid_ns_of(pid: i32) -> Vec<(i32, String)> {
    namespaces::inode(&pid.to_string(), "pid")
        .map(|ino| namespaces::pids_in_ns("pid", ino))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some((
                p,
                std::fs::read_to_string(format!("/proc/{p}/status")).ok()?,
            ))
        })
        .collect()
}

pub(super) fn op_orphan(_args: &[String]) -> i32 {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    if let Err(c) = unshare_pid() {
        return c;
    }
    let init = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            orphan_ns_init(w)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return die(format!("fork: {e}")),
    };
    drop(w);
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut buf).unwrap_or(0);
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    let mut it = line
        .split_whitespace()
        .filter_map(|x| x.parse::<i64>().ok());
    let (ns_pid, ppid_inside) = (it.next(), it.next());
    let statuses = statuses_in_pid_ns_of(init.as_raw());
    let found = ns_pid.and_then(|n| find_by_nspid(&statuses, n as i32));
    let (kids, host_ppid) = (found.map(|f| f.0), found.map(|f| f.1));
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    reply(&Orphan {
        orphan_ns_pid: ns_pid,
        orphan_ppid_inside: ppid_inside,
        init_host_pid: init.as_raw(),
        orphan_host_pid: kids,
        orphan_host_ppid: host_ppid,
    })
}

#[cfg(test)]
mod tests {
    use super::find_by_nspid;

    fn status(nspid: &str, ppid: i32) -> String {
        format!("Name:\tsleep\nPPid:\t{ppid}\nNSpid:\t{nspid}\n")
    }

    /// Recorded from a run: the ns init (host 4100, ns 1), its first child
    /// (4101, ns 2) and the orphan (4103, ns 3). The orphan is found by its
    /// NSpid, not by being the init's child, so a wrong reparenting shows.
    #[test]
    fn the_orphan_is_found_by_nspid_and_its_ppid_can_disagree() {
        let mut recorded = vec![
            (4100, status("4100\t1", 4099)),
            (4101, status("4101\t2", 4100)),
            (4103, status("4103\t3", 4100)),
        ];
        assert_eq!(find_by_nspid(&recorded, 3), Some((4103, 4100)));
        // Reparented to the host's init instead: the check's input differs.
        recorded[2].1 = status("4103\t3", 1);
        assert_eq!(find_by_nspid(&recorded, 3), Some((4103, 1)));
        // A host process (one NSpid level) never matches.
        assert_eq!(find_by_nspid(&[(3, status("3", 1))], 3), None);
    }
}
