//! Escape-section ops: attempts a container-like process makes to leave
//! its namespaces (release_agent, abstract sockets, locked mounts, device
//! nodes, setns, no_new_privs), each reporting the errno it met.

use super::{die, exec};
use crate::host::unescape_mount;
use crate::namespaces;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// The unprivileged host uid the rows map a user namespace's root to (the
/// same one section 4 uses).
pub const UNPRIV: u32 = 100_000;

/// What a suite write to a `release_agent` ever contains: a program that
/// does nothing, should the agent ever run (it cannot: see the module doc).
pub const HARMLESS_AGENT: &str = "/bin/true";

fn errno_of(r: Result<(), Errno>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// The last mountinfo entry for `point`: (fstype, per-mount options, super options).
pub fn mount_entry(mountinfo: &str, point: &Path) -> Option<(String, String, String)> {
    mountinfo.lines().rev().find_map(|l| {
        let (head, tail) = l.split_once(" - ")?;
        let f: Vec<&str> = head.split_whitespace().collect();
        if Path::new(&unescape_mount(f.get(4)?)) != point {
            return None;
        }
        let t: Vec<&str> = tail.split_whitespace().collect();
        Some((
            t.first()?.to_string(),
            f.get(5)?.to_string(),
            t.get(2).unwrap_or(&"").to_string(),
        ))
    })
}

/// True when `p` is the root of the suite's fresh named v1 hierarchy `name`:
/// statfs says cgroup, mountinfo shows a cgroup mount there with
/// `name=NAME`, `notify_on_release` is 0 and there is no child cgroup (so
/// nothing could ever be released). Only then is its release_agent written.
fn is_named_hierarchy(p: &Path, name: &str) -> bool {
    let magic = nix::sys::statfs::statfs(p)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let named = mount_entry(&mi, p).is_some_and(|(t, _, sup)| {
        t == "cgroup" && sup.split(',').any(|o| o == format!("name={name}"))
    });
    let quiet = std::fs::read_to_string(p.join("notify_on_release")).is_ok_and(|n| n.trim() == "0");
    let childless = std::fs::read_dir(p).is_ok_and(|rd| !rd.flatten().any(|e| e.path().is_dir()));
    magic && named && quiet && childless
}

fn mount_cgroup(p: &Path, opts: &str) -> Result<(), Errno> {
    use nix::mount::{mount, MsFlags};
    let f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("cgroup"), p, Some("cgroup"), f, Some(opts))
}

fn umount(p: &Path) {
    let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
}

/// Writes the harmless agent to the release_agent of the verified hierarchy
/// `name` at `root`; clears it again if the write went through and `clear`
/// (the suite's own hierarchy is left for `esc-ra-own` to read back).
fn try_release_agent(root: &Path, name: &str, clear: bool) -> String {
    use std::io::Write;
    if !is_named_hierarchy(root, name) {
        return "not-attempted-unverified-mount".into();
    }
    let file = root.join("release_agent");
    let r = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|mut f| f.write_all(HARMLESS_AGENT.as_bytes()));
    if r.is_ok() && clear {
        let _ = std::fs::write(&file, "\n");
    }
    errno_of(r.map_err(|e| io_errno(&e)))
}

/// `esc-ra-own DIR OWN -- CMD…`: as real root in a private mount ns, mount
/// the suite's named hierarchy OWN on DIR/own, chown its release_agent to
/// the unprivileged uid (so the capability check, not file permissions, is
/// what an attempt meets), run CMD, then read back, clear and unmount.
pub(super) fn op_ra_own(args: &[String]) -> i32 {
    let (Some(dir), Some(own)) = (args.first(), args.get(1)) else {
        eprintln!("esc-ra-own: usage DIR OWN -- CMD…");
        return 2;
    };
    let root = Path::new(dir).join("own");
    let r = mount_cgroup(&root, &format!("none,name={own}"));
    if r.is_err() || !is_named_hierarchy(&root, own) {
        if r.is_ok() {
            umount(&root);
        }
        println!(
            "{}",
            json!({"own_mount": if r.is_ok() { "unverified".into() } else { errno_of(r) }})
        );
        return 0;
    }
    let agent = root.join("release_agent");
    let id = Some(nix::unistd::Uid::from_raw(UNPRIV));
    let _ = nix::unistd::chown(&agent, id, Some(nix::unistd::Gid::from_raw(UNPRIV)));
    let cmd: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    let status = cmd.first().map(|p| {
        Command::new(p)
            .args(&cmd[1..])
            .status()
            .map(|s| s.code().unwrap_or(-1))
            .unwrap_or(-1)
    });
    let after = std::fs::read_to_string(&agent).unwrap_or_default();
    let _ = std::fs::write(&agent, "\n");
    let cleared = std::fs::read_to_string(&agent).unwrap_or_default();
    umount(&root);
    println!(
        "{}",
        json!({"own_mount": "ok", "own_after": after.trim(), "own_cleared": cleared.trim(), "attempt_status": status})
    );
    0
}

/// The v1 controllers `esc-ra-try` may mount (comma-separated), set by the
/// row: never one that cgroup2 holds.
pub const V1_TRY_ENV: &str = "ISOCHECK_RA_V1_TRY";

/// `esc-ra-try DIR TRY OWN`: mount a named hierarchy TRY on DIR/try and
/// write its release_agent (only once verified); mount `memory` and `rdma`
/// as the exploit did (never opened); write the release_agent of the suite
/// hierarchy OWN on DIR/own.
pub(super) fn op_ra_try(args: &[String]) -> i32 {
    let [dir, tried, own] = args else {
        eprintln!("esc-ra-try: usage DIR TRY OWN");
        return 2;
    };
    let d = Path::new(dir);
    let t = d.join("try");
    let m = mount_cgroup(&t, &format!("none,name={tried}"));
    let write = match m {
        Ok(()) => {
            let w = try_release_agent(&t, tried, true);
            umount(&t);
            w
        }
        Err(_) => "not-attempted-mount-refused".into(),
    };
    let mut j = json!({"named_mount": errno_of(m), "named_write": write});
    let tryable = std::env::var(V1_TRY_ENV).unwrap_or_default();
    for c in ["memory", "rdma"] {
        if !tryable.split(',').any(|t| t == c) {
            j[format!("{c}_mount")] = json!("on-cgroup2-not-tried");
            continue;
        }
        let e = d.join("exploit");
        let r = mount_cgroup(&e, c);
        if r.is_ok() {
            umount(&e);
        }
        j[format!("{c}_mount")] = json!(errno_of(r));
    }
    j["own_write"] = json!(try_release_agent(&d.join("own"), own, false));
    println!("{j}");
    0
}

fn abstract_addr(name: &str) -> nix::Result<nix::sys::socket::UnixAddr> {
    nix::sys::socket::UnixAddr::new_abstract(name.as_bytes())
}

fn stream_socket() -> nix::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Reply of `esc-abstract-connect`: connect(2)'s errno name (or `ok`),
/// the server's answer, and the netns the client ran in.
#[derive(Debug, Serialize, Deserialize)]
pub struct Connect {
    /// connect(2)'s errno name, or `ok`.
    pub connect: String,
    /// What the server sent (`reply NAME`); empty when nothing came.
    pub reply: String,
    /// The client's netns inode, to show which namespace it ran in.
    pub netns: Option<u64>,
}

/// Reply of `esc-umount-reveal`: errno names (or `ok`) of the plain and
/// lazy unmount and of reading the file the mount covered.
#[derive(Debug, Serialize, Deserialize)]
pub struct UmountReveal {
    /// The plain umount2's errno name, or `ok`.
    pub umount: String,
    /// The lazy (MNT_DETACH) umount's errno name, `ok`, or `not-needed` when the plain one worked.
    pub umount_detach: String,
    /// Reading the covered file: `ok` means the unmount revealed it.
    pub covered_file: String,
}

/// Reply of `esc-mknod`: errno names (or `ok`) of mknod(c 1:3) and of
/// mounting proc.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mknod {
    /// mknod of /dev/null's numbers (c 1:3): errno name or `ok`.
    pub mknod: String,
    /// mounting a proc: errno name or `ok`.
    pub mount_proc: String,
}

/// Reply of `esc-setns`: opening the netns file, setns(2) into it, and the
/// netns this process ended in.
#[derive(Debug, Serialize, Deserialize)]
pub struct Setns {
    /// Opening the netns file: `ok` or the errno.
    pub open: String,
    /// setns(2): errno name, `ok`, or `not-attempted` when the open failed.
    pub setns: String,
    /// The netns inode this process ended in; compared with the target's.
    pub netns_after: Option<u64>,
}

/// `esc-abstract-serve NAME`: bind `@NAME`, print `ready`, answer every
/// connection with `reply NAME`.
pub(super) fn op_abstract_serve(args: &[String]) -> i32 {
    use nix::sys::socket::{accept, bind, listen, Backlog};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = args.first().cloned().unwrap_or_default();
    let fd = match stream_socket().and_then(|fd| {
        bind(fd.as_raw_fd(), &abstract_addr(&name)?)?;
        listen(&fd, Backlog::new(8)?)?;
        Ok(fd)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            return die(format!("esc-abstract-serve: {e}"));
        }
    };
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        if let Ok(c) = accept(fd.as_raw_fd()) {
            // SAFETY: accept returned a new descriptor we own.
            let c = unsafe { OwnedFd::from_raw_fd(c) };
            let _ = nix::unistd::write(&c, format!("reply {name}\n").as_bytes());
        }
    }
}

/// `esc-abstract-connect NAME [NETNS]`: (after setns into NETNS) connect to
/// `@NAME`; print the errno, the reply and the netns inode it ran in.
pub(super) fn op_abstract_connect(args: &[String]) -> i32 {
    use nix::sys::socket::connect;
    use std::os::fd::AsRawFd;
    let name = args.first().cloned().unwrap_or_default();
    if let Some(ns) = args.get(1) {
        let r = std::fs::File::open(ns)
            .map_err(|e| io_errno(&e))
            .and_then(|f| nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET));
        if let Err(e) = r {
            return die(format!("setns {ns}: {e}"));
        }
    }
    let mut reply = String::new();
    let r = stream_socket().and_then(|fd| {
        connect(fd.as_raw_fd(), &abstract_addr(&name)?)?;
        let mut b = [0u8; 256];
        let n = nix::unistd::read(fd.as_raw_fd(), &mut b)?;
        reply = String::from_utf8_lossy(&b[..n]).trim().to_string();
        Ok(())
    });
    let netns = namespaces::inode("self", "net").ok();
    super::reply(&Connect {
        connect: errno_of(r),
        reply,
        netns,
    })
}

/// `esc-umount-reveal MOUNTPOINT FILE`: try to unmount (plain, then lazy)
/// and read the file it covered.
pub(super) fn op_umount_reveal(args: &[String]) -> i32 {
    use nix::mount::{umount2, MntFlags};
    let [point, file] = args else {
        eprintln!("esc-umount-reveal: usage MOUNTPOINT FILE");
        return 2;
    };
    let plain = umount2(point.as_str(), MntFlags::empty());
    let detach = if plain.is_err() {
        errno_of(umount2(point.as_str(), MntFlags::MNT_DETACH))
    } else {
        "not-needed".into()
    };
    let covered = std::fs::read_to_string(file)
        .map(|_| ())
        .map_err(|e| io_errno(&e));
    super::reply(&UmountReveal {
        umount: errno_of(plain),
        umount_detach: detach,
        covered_file: errno_of(covered),
    })
}

/// `esc-mknod DIR`: mknod DIR/kernel (char 1:3) and mount proc on
/// DIR/p-kernel (unmounted at once if it worked).
pub(super) fn op_mknod(args: &[String]) -> i32 {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let d = Path::new(args.first().map(String::as_str).unwrap_or("/nonexistent"));
    let node = mknod(
        &d.join("kernel"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(1, 3),
    );
    let p = d.join("p-kernel");
    use nix::mount::{mount, MsFlags};
    let f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc = mount(Some("proc"), &p, Some("proc"), f, None::<&str>);
    if proc.is_ok() {
        umount(&p);
    }
    super::reply(&Mknod {
        mknod: errno_of(node),
        mount_proc: errno_of(proc),
    })
}

/// `esc-setns NSFILE`: open it and setns(CLONE_NEWNET); report both and the
/// netns this process ends in, then exit.
pub(super) fn op_setns(args: &[String]) -> i32 {
    let path = args.first().cloned().unwrap_or_default();
    let (open, set) = match std::fs::File::open(&path) {
        Ok(f) => (
            "ok".to_string(),
            errno_of(nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)),
        ),
        Err(e) => (format!("{:?}", io_errno(&e)), "not-attempted".into()),
    };
    super::reply(&Setns {
        open,
        setns: set,
        netns_after: namespaces::inode("self", "net").ok(),
    })
}

/// `esc-exec-as UID nnp|plain PROG ARGS…`: drop to UID (and gid UID, no
/// supplementary groups), set no_new_privs when asked, exec PROG.
pub(super) fn op_exec_as(args: &[String]) -> i32 {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let (Some(uid), Some(mode)) = (args.first().and_then(|u| u.parse().ok()), args.get(1)) else {
        eprintln!("esc-exec-as: usage UID nnp|plain PROG ARGS…");
        return 2;
    };
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(uid));
    if let Err(e) = setgroups(&[])
        .and_then(|_| setresgid(g, g, g))
        .and_then(|_| setresuid(u, u, u))
    {
        return die(format!("dropping to {uid}: {e}"));
    }
    // SAFETY: plain prctl on this single-threaded helper.
    if mode == "nnp" && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        return die(format!("PR_SET_NO_NEW_PRIVS: {e}"));
    }
    exec(&args[2..])
}
