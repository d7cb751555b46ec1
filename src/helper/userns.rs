//! User-namespace ops: the setgroups gate, nested maps, capabilities scoped
//! to a user ns's own netns.

use super::nsfs::{drop_to, errno_name};
use super::{die, reply, status_code};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;

fn write_proc(path: &str, data: &str) -> Result<(), Errno> {
    std::fs::write(path, data).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// Reply of `setgroups-deny`: what each step of LTP userns03's sequence met.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SetgroupsDeny {
    /// Who wrote the gid_map: "self" (the unprivileged creator) or "parent"
    /// (real root, CAP_SETGID in the parent ns).
    pub writer: String,
    /// /proc/self/setgroups right after unshare(CLONE_NEWUSER).
    pub setgroups_at_start: String,
    /// The creator's own gid_map write while setgroups is `allow`.
    pub gid_map_while_allow: String,
    /// Writing `deny` to setgroups.
    pub write_deny: String,
    /// The creator's gid_map write after `deny`.
    pub gid_map_after_deny: String,
    /// /proc/self/setgroups once the maps are written.
    pub setgroups_file: String,
    /// setgroups(2) as uid 0 of the namespace.
    pub setgroups_call: String,
    /// Writing `allow` back.
    pub write_allow_back: String,
}

const MAP: &str = "0 100000 1\n";

/// The creator's side once its maps exist: what setgroups says now.
fn finish_setgroups(mut r: SetgroupsDeny) -> i32 {
    let root = nix::unistd::Gid::from_raw(0);
    let become_root = nix::unistd::setresgid(root, root, root).and_then(|_| {
        let u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(u, u, u)
    });
    if let Err(e) = become_root {
        return die(format!("becoming uid 0 of the namespace: {e}"));
    }
    r.setgroups_file = read_trim("/proc/self/setgroups");
    r.setgroups_call = errno_name(&nix::unistd::setgroups(&[root]));
    r.write_allow_back = errno_name(&write_proc("/proc/self/setgroups", "allow"));
    reply(&r)
}

/// `setgroups-deny [--parent-writes]`: a child drops to uid 100000 and
/// makes a user ns. By default it writes its own maps (gid_map first while
/// setgroups is `allow`, then after `deny`); with --parent-writes this
/// process (real root) writes them and leaves setgroups alone.
pub(super) fn op_setgroups_deny(args: &[String]) -> i32 {
    let parent_writes = args.iter().any(|a| a == "--parent-writes");
    let (Ok((r1, w1)), Ok((r2, w2))) = (nix::unistd::pipe(), nix::unistd::pipe()) else {
        return die("pipe");
    };
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r1);
            drop(w2);
            if let Err(e) =
                drop_to(Some(100_000)).and_then(|_| nix::sched::unshare(CloneFlags::CLONE_NEWUSER))
            {
                return die(format!("uid 100000, unshare(CLONE_NEWUSER): {e}"));
            }
            let mut r = SetgroupsDeny {
                setgroups_at_start: read_trim("/proc/self/setgroups"),
                ..Default::default()
            };
            let _ = nix::unistd::write(&w1, b"u");
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(r2.as_raw_fd(), &mut b);
            if parent_writes {
                r.writer = "parent".into();
                r.gid_map_while_allow = "not-tried".into();
                r.write_deny = "not-tried".into();
                r.gid_map_after_deny = "not-tried".into();
            } else {
                r.writer = "self".into();
                if let Err(e) = write_proc("/proc/self/uid_map", MAP) {
                    return die(format!("the creator's own uid_map: {e}"));
                }
                r.gid_map_while_allow = errno_name(&write_proc("/proc/self/gid_map", MAP));
                r.write_deny = errno_name(&write_proc("/proc/self/setgroups", "deny"));
                r.gid_map_after_deny = errno_name(&write_proc("/proc/self/gid_map", MAP));
            }
            finish_setgroups(r)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w1);
            drop(r2);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(r1.as_raw_fd(), &mut b);
            if parent_writes {
                let p = child.as_raw();
                let w = write_proc(&format!("/proc/{p}/uid_map"), MAP)
                    .and_then(|_| write_proc(&format!("/proc/{p}/gid_map"), MAP));
                if let Err(e) = w {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
                    return die(format!("the parent's map writes: {e}"));
                }
            }
            let _ = nix::unistd::write(&w2, b"g");
            drop(w2);
            nix::sys::wait::waitpid(child, None)
                .map(status_code)
                .unwrap_or(125)
        }
        Err(e) => die(format!("fork: {e}")),
    }
}
