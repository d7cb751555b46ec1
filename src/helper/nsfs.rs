//! nsfs ops: the namespace ioctls, unshare(2) without capabilities,
//! setns through a pidfd, and the nesting depth of pid and user namespaces.

use super::{die, reply};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

/// The unprivileged uid these ops drop to (the suite's usual one).
const UNPRIV: u32 = 100_000;

/// `Ok` or the errno's name, the form every reply of this file uses.
pub fn errno_name<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn open_ns(path: &str) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: a descriptor just returned by open(2), owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ioctl of nsfs that answers with a new namespace descriptor.
fn ns_fd_ioctl(fd: RawFd, req: libc::Ioctl) -> Result<OwnedFd, Errno> {
    // SAFETY: NS_GET_PARENT / NS_GET_USERNS take no argument and return a fd.
    let r = unsafe { libc::ioctl(fd, req) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the fd the kernel just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn inode_of(fd: &OwnedFd) -> u64 {
    // SAFETY: borrows the fd for fstat only; the File is forgotten, not closed.
    let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
    f.metadata().map(|m| m.ino()).unwrap_or(0)
}

fn path_inode(p: &str) -> u64 {
    std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
}

/// NS_GET_PARENT / NS_GET_USERNS of the namespace at `path`: the returned
/// namespace's inode, or the errno.
fn related(path: &str, req: libc::Ioctl) -> Result<u64, Errno> {
    let fd = open_ns(path)?;
    ns_fd_ioctl(fd.as_raw_fd(), req).map(|f| inode_of(&f))
}

/// A child (PDEATHSIG) that dropped to `uid` (when given), unshared
/// `flags` and waits to be killed; returned once the unshare is done, with
/// unshare's errno name ("ok" when it worked).
pub fn paused_child(uid: Option<u32>, flags: CloneFlags) -> Result<(Pid, String), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            // After the uid change, which clears the parent-death signal.
            let res = drop_to(uid).and_then(|_| {
                // SAFETY: plain prctl in the child.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                nix::sched::unshare(flags)
            });
            // pid_for_children stays empty (ENOENT) until the first child.
            if res.is_ok() && flags.contains(CloneFlags::CLONE_NEWPID) {
                pid_ns_init();
            }
            let _ = nix::unistd::write(&w, errno_name(&res).as_bytes());
            drop(w);
            loop {
                nix::unistd::pause();
            }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            let mut buf = [0u8; 64];
            let n = nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap_or(0);
            Ok((child, String::from_utf8_lossy(&buf[..n]).into_owned()))
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Forks the first process of the pid ns just unshared (it only pauses)
/// and returns once it has its parent-death signal, so it can never
/// outlive this process (a slow TCG guest once let the parent die first).
fn pid_ns_init() {
    let Ok((r, w)) = nix::unistd::pipe() else {
        return;
    };
    // SAFETY: single-threaded; the grandchild only pauses.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: plain prctl in the grandchild.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            drop(w);
            drop(r);
            loop {
                nix::unistd::pause();
            }
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(w);
            // EOF once the grandchild dropped its end, after its prctl.
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
        }
        Err(_) => {}
    }
}

/// setresgid/setresuid to `uid` with no supplementary groups.
pub fn drop_to(uid: Option<u32>) -> Result<(), Errno> {
    let Some(uid) = uid else { return Ok(()) };
    nix::unistd::setgroups(&[])?;
    set_ids(uid)
}

/// setresgid/setresuid to `uid` (gid the same), keeping the process's
/// /proc files its own and its parent-death signal armed.
pub fn set_ids(uid: u32) -> Result<(), Errno> {
    let (u, g) = (
        nix::unistd::Uid::from_raw(uid),
        nix::unistd::Gid::from_raw(uid),
    );
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setresuid(u, u, u)?;
    // The uid change made the process non-dumpable, which leaves its
    // /proc/self files (uid_map, setgroups) root's and unwritable to it,
    // and cleared its parent-death signal.
    // SAFETY: plain prctls.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 1);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    Ok(())
}

fn kill_and_reap(child: Pid) {
    let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
}

/// Reply of `ns-ioctl`: what the nsfs ioctls answered, as relations
/// (which namespace a returned fd is), never raw inode numbers.
#[derive(Debug, Serialize, Deserialize)]
pub struct NsIoctl {
    /// NS_GET_PARENT of the child's new user ns: "mine" (this process's
    /// user ns), "other", or the errno.
    pub user_parent: String,
    /// NS_GET_PARENT of the child's new pid ns (pid_for_children).
    pub pid_parent: String,
    /// NS_GET_PARENT of this process's own user ns (the top it sees).
    pub user_top: String,
    /// NS_GET_PARENT of this process's own pid ns.
    pub pid_top: String,
    /// NS_GET_USERNS of the child's new uts ns: "child-user" (the user ns
    /// made with it), "mine", "other", or the errno.
    pub uts_owner: String,
    /// NS_GET_USERNS of this process's uts ns.
    pub my_uts_owner: String,
    /// NS_GET_OWNER_UID of the child's user ns (its creator's euid).
    pub owner_uid: Option<u32>,
    /// NS_GET_NSTYPE of each /proc/self/ns link: the CLONE_NEW* name.
    pub nstype: BTreeMap<String, String>,
    /// NS_GET_NSTYPE on a descriptor that is not a namespace.
    pub non_ns_fd: String,
}

fn nstype_name(t: i32) -> String {
    let names = [
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWTIME, "CLONE_NEWTIME"),
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
    ];
    names
        .iter()
        .find(|(v, _)| *v == t)
        .map_or(format!("{t:#x}"), |(_, n)| n.to_string())
}

fn nstype(path: &str) -> String {
    let r = open_ns(path).and_then(|fd| {
        // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
        let t = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
        if t < 0 {
            Err(Errno::last())
        } else {
            Ok(t)
        }
    });
    r.map_or_else(|e| format!("{e:?}"), nstype_name)
}

fn owner_uid(path: &str) -> Option<u32> {
    let fd = open_ns(path).ok()?;
    let mut uid: libc::uid_t = u32::MAX;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_OWNER_UID, &mut uid) };
    (r == 0).then_some(uid)
}

/// `ns-ioctl`: a child drops to uid 100000 and unshares user+uts+pid; this
/// process (in the run's namespaces) asks nsfs how they relate.
pub(super) fn op_ns_ioctl(_args: &[String]) -> i32 {
    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
    let (child, unshared) = match paused_child(Some(UNPRIV), flags) {
        Ok(c) => c,
        Err(e) => return die(e),
    };
    if unshared != "ok" {
        kill_and_reap(child);
        return die(format!("the child's unshare(user|uts|pid): {unshared}"));
    }
    let c = |k: &str| format!("/proc/{child}/ns/{k}");
    let name = |r: Result<u64, Errno>, mine: u64, child_user: u64| match r {
        Ok(i) if i == mine => "mine".to_string(),
        Ok(i) if i == child_user => "child-user".to_string(),
        Ok(_) => "other".to_string(),
        Err(e) => format!("{e:?}"),
    };
    let my_user = path_inode("/proc/self/ns/user");
    let my_pid = path_inode("/proc/self/ns/pid");
    let child_user = path_inode(&c("user"));
    let reply_ = NsIoctl {
        user_parent: name(related(&c("user"), libc::NS_GET_PARENT), my_user, 0),
        pid_parent: name(
            related(&c("pid_for_children"), libc::NS_GET_PARENT),
            my_pid,
            0,
        ),
        user_top: name(related("/proc/self/ns/user", libc::NS_GET_PARENT), 0, 0),
        pid_top: name(related("/proc/self/ns/pid", libc::NS_GET_PARENT), 0, 0),
        uts_owner: name(related(&c("uts"), libc::NS_GET_USERNS), my_user, child_user),
        my_uts_owner: name(
            related("/proc/self/ns/uts", libc::NS_GET_USERNS),
            my_user,
            child_user,
        ),
        owner_uid: owner_uid(&c("user")),
        nstype: crate::namespaces::TYPES
            .iter()
            .map(|k| (k.to_string(), nstype(&format!("/proc/self/ns/{k}"))))
            .collect(),
        non_ns_fd: nstype("/proc/self/status"),
    };
    kill_and_reap(child);
    reply(&reply_)
}

/// The namespace flags `ns.unshare-needs-cap` tries, by unshare(1)'s name.
pub const UNSHARE_FLAGS: [(&str, i32); 7] = [
    ("mount", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// Reply of `unshare-nocap`: the errno name (or "ok") of each attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct UnshareNoCap {
    /// The credentials the attempts ran with ("uid 65534" or "root").
    pub as_who: String,
    /// unshare(2) of each flag alone.
    pub alone: BTreeMap<String, String>,
    /// unshare(2) of each flag together with CLONE_NEWUSER.
    pub with_user: BTreeMap<String, String>,
    /// setns(2) into the suite namespace file given as argument.
    pub setns: String,
}

/// Runs `f` in a forked child (after dropping to `uid`) and returns what it
/// wrote: each attempt gets a fresh process, since a successful unshare
/// changes the one that made it.
pub(super) fn in_child_errno(uid: Option<u32>, f: impl FnOnce() -> Result<(), Errno>) -> String {
    let Ok((r, w)) = nix::unistd::pipe() else {
        return "pipe failed".into();
    };
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            let res = drop_to(uid).map_err(|e| format!("drop: {e:?}"));
            let msg = match res {
                Ok(()) => errno_name(&f()),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&w, msg.as_bytes());
            // SAFETY: leave at once, without the parent's atexit work.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            let mut buf = [0u8; 64];
            let n = nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap_or(0);
            let _ = nix::sys::wait::waitpid(child, None);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
        Err(e) => format!("fork: {e}"),
    }
}

/// `unshare-nocap NSFILE [--as-root]`: as uid 65534 (no capabilities, no
/// user ns) or as real root, unshare(2) each flag alone and with
/// CLONE_NEWUSER, and setns(2) into NSFILE (opened before dropping).
pub(super) fn op_unshare_nocap(args: &[String]) -> i32 {
    let Some(target) = args.first() else {
        return die("usage: unshare-nocap NSFILE [--as-root]");
    };
    let as_root = args.iter().any(|a| a == "--as-root");
    let uid = (!as_root).then_some(65534);
    let fd = match open_ns(target) {
        Ok(fd) => fd,
        Err(e) => return die(format!("opening {target}: {e}")),
    };
    let try_flags = |extra: i32| -> BTreeMap<String, String> {
        UNSHARE_FLAGS
            .iter()
            .map(|(name, f)| {
                let flags = CloneFlags::from_bits_retain(f | extra);
                (
                    name.to_string(),
                    in_child_errno(uid, || nix::sched::unshare(flags)),
                )
            })
            .collect()
    };
    let raw = fd.as_raw_fd();
    // SAFETY: setns on a descriptor this process holds open.
    let setns = in_child_errno(uid, || {
        Errno::result(unsafe { libc::setns(raw, 0) }).map(drop)
    });
    reply(&UnshareNoCap {
        as_who: if as_root {
            "root".into()
        } else {
            "uid 65534".into()
        },
        alone: try_flags(0),
        with_user: try_flags(libc::CLONE_NEWUSER),
        setns,
    })
}

/// Reply of `ns-nesting`: how deep the namespaces went below the caller's
/// and what stopped them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Nesting {
    /// "pid" or "user".
    pub kind: String,
    /// Namespaces made, each inside the previous one.
    pub depth: u32,
    /// What the next unshare(2) met (ENOSPC at the kernel's limit).
    pub stopped_by: String,
}

/// The most levels tried: past the kernel's 32, so the limit must show.
const NEST_TRIES: u32 = 40;

/// One more user ns, root mapped to this process's own (root) ids, so the
/// next level's creator is mapped in its parent as the kernel requires.
fn nest_user() -> Result<(), Errno> {
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER)?;
    write_self("uid_map", "0 0 1\n")?;
    write_self("setgroups", "deny")?;
    write_self("gid_map", "0 0 1\n")
}

fn write_self(file: &str, data: &str) -> Result<(), Errno> {
    std::fs::write(format!("/proc/self/{file}"), data)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// Pid namespaces nest through children: unshare(CLONE_NEWPID), fork, and
/// the child (pid 1 there) goes on; the deepest writes the answer to `w`.
fn nest_pid(w: &OwnedFd) -> i32 {
    for depth in 0..NEST_TRIES {
        if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWPID) {
            let _ = nix::unistd::write(w, format!("{depth} {e:?}").as_bytes());
            return 0;
        }
        // SAFETY: single-threaded; each level waits for the next.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => continue,
            Ok(ForkResult::Parent { child }) => {
                let _ = nix::sys::wait::waitpid(child, None);
                return 0;
            }
            Err(e) => {
                let _ = nix::unistd::write(w, format!("{} fork-{e:?}", depth + 1).as_bytes());
                return 0;
            }
        }
    }
    let _ = nix::unistd::write(w, format!("{NEST_TRIES} none").as_bytes());
    0
}

/// `ns-nesting pid|user`: nests namespaces of KIND until unshare(2) fails.
pub(super) fn op_ns_nesting(args: &[String]) -> i32 {
    let kind = args.first().map(String::as_str).unwrap_or("");
    let (depth, stopped_by) = match kind {
        "user" => {
            let mut depth = 0;
            let mut stop = "none".to_string();
            while depth < NEST_TRIES {
                if let Err(e) = nest_user() {
                    stop = format!("{e:?}");
                    break;
                }
                depth += 1;
            }
            (depth, stop)
        }
        "pid" => {
            let Ok((r, w)) = nix::unistd::pipe() else {
                return die("pipe");
            };
            // SAFETY: single-threaded; the subtree only forks and writes.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    drop(r);
                    let code = nest_pid(&w);
                    // SAFETY: leave without the helper's exit work.
                    unsafe { libc::_exit(code) }
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(w);
                    let mut buf = [0u8; 64];
                    let n = nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap_or(0);
                    let _ = nix::sys::wait::waitpid(child, None);
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let (d, why) = text.split_once(' ').unwrap_or(("0", "no answer"));
                    (d.parse().unwrap_or(0), why.to_string())
                }
                Err(e) => return die(format!("fork: {e}")),
            }
        }
        other => return die(format!("ns-nesting: unknown kind {other:?}")),
    };
    reply(&Nesting {
        kind: kind.into(),
        depth,
        stopped_by,
    })
}

/// The types `ns.pidfd-setns` joins at once, as their /proc/PID/ns names.
pub const PIDFD_TYPES: [(&str, i32); 5] = [
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("mnt", libc::CLONE_NEWNS),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// Reply of `pidfd-setns`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PidfdSetns {
    /// "pidfd" (one setns of every flag) or "per-type" (one nsfd each).
    pub how: String,
    /// The join into the target.
    pub join: String,
    /// The types whose inode equals the target's afterwards.
    pub equal_after: Vec<String>,
    /// setns of a pidfd whose process has exited (pidfd way only).
    pub exited: String,
    /// Whether that failed attempt left every namespace as it was.
    pub exited_changed_nothing: bool,
    /// setns(pidfd, 0).
    pub flags_zero: String,
    /// setns(pidfd, CLONE_NEWUTS) from a new user ns of uid 100000.
    pub from_other_userns: String,
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open(pid, 0) returns a new descriptor.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: the descriptor the kernel just returned.
    Errno::result(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn setns_raw(fd: RawFd, flags: i32) -> Result<(), Errno> {
    // SAFETY: setns on a descriptor this process holds.
    Errno::result(unsafe { libc::setns(fd, flags) }).map(drop)
}

fn my_inodes() -> BTreeMap<String, u64> {
    crate::namespaces::inodes("self")
}

/// A pidfd of a child that has exited (and been reaped).
fn exited_pidfd() -> Result<OwnedFd, Errno> {
    // SAFETY: single-threaded; the child exits at once.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => {
            let fd = pidfd_open(child.as_raw());
            let _ = nix::sys::wait::waitpid(child, None);
            fd
        }
    }
}

/// `pidfd-setns PID [--per-type]`: the refusals first (each leaves this
/// process where it was), then the join into PID's namespaces.
pub(super) fn op_pidfd_setns(args: &[String]) -> i32 {
    let Some(pid) = args.first().and_then(|p| p.parse::<i32>().ok()) else {
        return die("usage: pidfd-setns PID [--per-type]");
    };
    let per_type = args.iter().any(|a| a == "--per-type");
    let all = PIDFD_TYPES.iter().fold(0, |f, (_, t)| f | t);
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => return die(format!("pidfd_open({pid}): {e}")),
    };
    let before = my_inodes();
    let exited = exited_pidfd().and_then(|fd| setns_raw(fd.as_raw_fd(), all));
    let exited_changed_nothing = my_inodes() == before;
    let flags_zero = setns_raw(pidfd.as_raw_fd(), 0);
    let raw = pidfd.as_raw_fd();
    let from_other = super::nsfs::in_child_errno(Some(UNPRIV), || {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)?;
        setns_raw(raw, libc::CLONE_NEWUTS)
    });
    let join = if per_type {
        PIDFD_TYPES.iter().try_for_each(|(k, t)| {
            let fd = open_ns(&format!("/proc/{pid}/ns/{k}"))?;
            setns_raw(fd.as_raw_fd(), *t)
        })
    } else {
        setns_raw(raw, all)
    };
    let target = crate::namespaces::inodes(&pid.to_string());
    let mine = my_inodes();
    reply(&PidfdSetns {
        how: if per_type { "per-type" } else { "pidfd" }.into(),
        join: errno_name(&join),
        equal_after: PIDFD_TYPES
            .iter()
            .filter(|(k, _)| mine.contains_key(*k) && mine.get(*k) == target.get(*k))
            .map(|(k, _)| k.to_string())
            .collect(),
        exited: errno_name(&exited),
        exited_changed_nothing,
        flags_zero: errno_name(&flags_zero),
        from_other_userns: from_other,
    })
}
