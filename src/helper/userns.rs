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

/// The creator's own map writes (none when the parent writes them).
fn creator_steps(r: &mut SetgroupsDeny, parent_writes: bool) -> Result<(), String> {
    if parent_writes {
        r.writer = "parent".into();
        r.gid_map_while_allow = "not-tried".into();
        r.write_deny = "not-tried".into();
        r.gid_map_after_deny = "not-tried".into();
        return Ok(());
    }
    r.writer = "self".into();
    write_proc("/proc/self/uid_map", MAP).map_err(|e| format!("the creator's own uid_map: {e}"))?;
    r.gid_map_while_allow = errno_name(&write_proc("/proc/self/gid_map", MAP));
    r.write_deny = errno_name(&write_proc("/proc/self/setgroups", "deny"));
    r.gid_map_after_deny = errno_name(&write_proc("/proc/self/gid_map", MAP));
    Ok(())
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
            if let Err(e) = creator_steps(&mut r, parent_writes) {
                return die(e);
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

/// Reply of `nested-map`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NestedMap {
    /// Extents in the inner uid_map (0 when real root opened the file).
    pub extents: usize,
    /// open(FILE, O_RDONLY) as uid 0 of the inner user ns.
    pub open: String,
    /// The opener's uids (real, effective, saved, fs) seen from the host.
    pub host_uids: Vec<String>,
}

/// The inner map: `n` extents covering 0..1000 of the outer ns, root first.
pub fn extents(n: usize) -> String {
    if n <= 1 {
        return "0 0 1000\n".into();
    }
    let mut s: String = (0..n - 1).map(|i| format!("{i} {i} 1\n")).collect();
    let start = n - 1;
    s.push_str(&format!("{start} {start} {}\n", 1000 - start));
    s
}

fn wait_byte(r: &std::os::fd::OwnedFd) {
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
}

fn be_root_here() -> Result<(), Errno> {
    // Its children's /proc files must stay writable to the outer root too.
    super::nsfs::set_ids(0)
}

fn pdeathsig() {
    // SAFETY: plain prctl in a child.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// The inner process: unshare into U2, wait for its maps, become its root,
/// open FILE, report `PID ERRNO` on `res` and wait to be killed.
fn inner(file: &str, n: usize, res: &std::os::fd::OwnedFd) -> ! {
    let (r1, w1) = nix::unistd::pipe().expect("pipe");
    let (r2, w2) = nix::unistd::pipe().expect("pipe");
    // SAFETY: single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            pdeathsig();
            let _ = nix::sched::unshare(CloneFlags::CLONE_NEWUSER);
            let _ = nix::unistd::write(&w1, b"u");
            wait_byte(&r2);
            let r = be_root_here().and_then(|_| {
                std::fs::File::open(file)
                    .map(drop)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            });
            let msg = format!("{} {}", std::process::id(), errno_name(&r));
            let _ = nix::unistd::write(res, msg.as_bytes());
            loop {
                nix::unistd::pause();
            }
        }
        Ok(ForkResult::Parent { child }) => {
            wait_byte(&r1);
            let p = child.as_raw();
            let map = extents(n);
            let w = write_proc(&format!("/proc/{p}/uid_map"), &map)
                .and_then(|_| write_proc(&format!("/proc/{p}/gid_map"), &map));
            if let Err(e) = w {
                let _ = nix::unistd::write(res, format!("0 map-{e:?}").as_bytes());
            }
            let _ = nix::unistd::write(&w2, b"g");
            let _ = nix::sys::wait::waitpid(child, None);
            // SAFETY: leave at once.
            unsafe { libc::_exit(0) }
        }
        Err(_) => unsafe { libc::_exit(125) },
    }
}

/// The control's open: this process (real root) opens FILE.
fn open_as_root(file: &str) -> NestedMap {
    let r = std::fs::File::open(file)
        .map(drop)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    NestedMap {
        extents: 0,
        open: errno_name(&r),
        host_uids: crate::process::status_values(&st, "Uid"),
    }
}

/// `nested-map FILE EXTENTS|--as-root`: real root maps an outer user ns
/// `0 100000 1000`; its root maps an inner one with EXTENTS extents; the
/// inner root opens FILE. With --as-root this process opens it instead.
pub(super) fn op_nested_map(args: &[String]) -> i32 {
    let (Some(file), Some(how)) = (args.first(), args.get(1)) else {
        return die("usage: nested-map FILE EXTENTS|--as-root");
    };
    if how == "--as-root" {
        return reply(&open_as_root(file));
    }
    let n: usize = how.parse().unwrap_or(1);
    let (Ok((r1, w1)), Ok((r2, w2)), Ok((rr, rw))) = (
        nix::unistd::pipe(),
        nix::unistd::pipe(),
        nix::unistd::pipe(),
    ) else {
        return die("pipe");
    };
    // SAFETY: single-threaded.
    let outer = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            pdeathsig();
            let _ = nix::sched::unshare(CloneFlags::CLONE_NEWUSER);
            let _ = nix::unistd::write(&w1, b"u");
            wait_byte(&r2);
            if be_root_here().is_err() {
                let _ = nix::unistd::write(&rw, b"0 outer-root-failed");
                // SAFETY: leave at once.
                unsafe { libc::_exit(125) }
            }
            inner(file, n, &rw)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return die(format!("fork: {e}")),
    };
    drop(rw);
    wait_byte(&r1);
    let p = outer.as_raw();
    let w = write_proc(&format!("/proc/{p}/uid_map"), "0 100000 1000\n")
        .and_then(|_| write_proc(&format!("/proc/{p}/gid_map"), "0 100000 1000\n"));
    let _ = nix::unistd::write(&w2, b"g");
    let mut buf = [0u8; 64];
    let k = nix::unistd::read(rr.as_raw_fd(), &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..k]).into_owned();
    let (pid, open) = text.split_once(' ').unwrap_or(("0", "no answer"));
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let host_uids = crate::process::status_values(&st, "Uid");
    let _ = nix::sys::signal::kill(outer, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(outer, None);
    if let Err(e) = w {
        return die(format!("the outer maps: {e}"));
    }
    reply(&NestedMap {
        extents: n,
        open: open.to_string(),
        host_uids,
    })
}

/// Reply of `net-caps`: capability-gated socket steps in this netns.
#[derive(Debug, Serialize, Deserialize)]
pub struct NetCaps {
    /// socket(AF_INET, SOCK_RAW, IPPROTO_ICMP): CAP_NET_RAW over the netns.
    pub raw_socket: String,
    /// setsockopt(SO_MARK): CAP_NET_ADMIN over the netns.
    pub so_mark: String,
}

/// `net-caps`: what this process's capabilities get from its netns, by
/// steps that change nothing outside the process.
pub(super) fn op_net_caps(_args: &[String]) -> i32 {
    if let Err(e) = super::refuse_in_host_ns("net") {
        return die(e);
    }
    // SAFETY: plain socket(2) calls; each descriptor is closed below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    let raw_r = Errno::result(raw).map(|fd| unsafe { libc::close(fd) });
    // SAFETY: as above.
    let udp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    let mark: libc::c_int = 7;
    let mark_r = Errno::result(udp).and_then(|fd| {
        // SAFETY: an int option of the size passed, on a socket this process owns.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                &mark as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: closes the socket just made.
        unsafe { libc::close(fd) };
        Errno::result(r).map(drop)
    });
    reply(&NetCaps {
        raw_socket: errno_name(&raw_r.map(drop)),
        so_mark: errno_name(&mark_r),
    })
}

/// Reply of `userns-policy`: each step an unprivileged uid takes into a
/// user+mnt ns, with the errno of the first that failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct UsernsPolicy {
    /// unshare(CLONE_NEWUSER|CLONE_NEWNS) as uid 100000 (or as real root).
    pub unshare: String,
    /// Writing its own maps (0 → its uid).
    pub maps: String,
    /// CapEff of uid 0 inside, hex.
    pub cap_eff: String,
    /// mount(tmpfs) on the given dir inside the new mount ns.
    pub mount_tmpfs: String,
}

/// `userns-policy DIR [--as-root]`: as uid 100000 (or real root), make a
/// user+mnt ns with its own one-line maps, read CapEff, mount a tmpfs.
pub(super) fn op_userns_policy(args: &[String]) -> i32 {
    let dir = args.first().cloned().unwrap_or_default();
    let uid = if args.iter().any(|a| a == "--as-root") {
        0
    } else {
        100_000
    };
    let mut r = UsernsPolicy {
        unshare: "not-tried".into(),
        maps: "not-tried".into(),
        cap_eff: String::new(),
        mount_tmpfs: "not-tried".into(),
    };
    if let Err(e) = drop_to(Some(uid)) {
        return die(format!("dropping to {uid}: {e}"));
    }
    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    let un = nix::sched::unshare(flags);
    r.unshare = errno_name(&un);
    if un.is_err() {
        return reply(&r);
    }
    let map = format!("0 {uid} 1\n");
    let maps = write_proc("/proc/self/uid_map", &map)
        .and_then(|_| write_proc("/proc/self/setgroups", "deny"))
        .and_then(|_| write_proc("/proc/self/gid_map", &map))
        .and_then(|_| be_root_here());
    r.maps = errno_name(&maps);
    let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    r.cap_eff = crate::process::status_values(&st, "CapEff").join("");
    if maps.is_err() {
        return reply(&r);
    }
    if let Err(e) = super::refuse_in_host_ns("mnt") {
        return die(e);
    }
    let none = None::<&str>;
    let m = nix::mount::mount(
        none,
        "/",
        none,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        none,
    )
    .and_then(|_| {
        nix::mount::mount(
            Some("isocheck"),
            dir.as_str(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
    });
    r.mount_tmpfs = errno_name(&m);
    reply(&r)
}

const CAP_NET_RAW: u32 = 13;
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;

/// A file's `security.capability`, decoded.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct FileCap {
    /// getxattr's errno name, or "ok".
    pub read: String,
    /// The format revision (2, or 3 with a rootid).
    pub version: Option<u32>,
    /// The v3 rootid: the host uid that is root where the caps apply.
    pub rootid: Option<u32>,
    /// Whether CAP_NET_RAW is in the permitted set.
    pub net_raw: bool,
}

/// `fcap-set FILE`: writes `cap_net_raw+ep` as a v2 `security.capability`
/// (the kernel rewrites it as v3 for a writer inside a user namespace).
pub(super) fn op_fcap_set(args: &[String]) -> i32 {
    let f = cpath_of(args.first());
    let mut v = Vec::with_capacity(20);
    for w in [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        1 << CAP_NET_RAW,
        0,
        0,
        0,
    ] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    let name = c"security.capability";
    // SAFETY: NUL-terminated names, a buffer of the length passed.
    let r = unsafe { libc::setxattr(f.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    reply(&std::collections::BTreeMap::from([(
        "setxattr",
        errno_name(&Errno::result(r).map(drop)),
    )]))
}

fn cpath_of(a: Option<&String>) -> std::ffi::CString {
    std::ffi::CString::new(a.map(String::as_str).unwrap_or("/nonexistent")).unwrap_or_default()
}

/// Decodes a raw `security.capability` value.
pub fn decode_fcap(raw: &[u8]) -> FileCap {
    let word = |i: usize| {
        raw.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0).unwrap_or(0) & 0xff00_0000;
    let version = match magic {
        VFS_CAP_REVISION_2 => Some(2),
        VFS_CAP_REVISION_3 => Some(3),
        _ => None,
    };
    FileCap {
        read: "ok".into(),
        version,
        rootid: if version == Some(3) { word(5) } else { None },
        net_raw: word(1).is_some_and(|p| p & (1 << CAP_NET_RAW) != 0),
    }
}

/// `fcap-read FILE`: the raw xattr as this process's namespace reads it.
pub(super) fn op_fcap_read(args: &[String]) -> i32 {
    let f = cpath_of(args.first());
    let name = c"security.capability";
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated names, a buffer of the length passed.
    let n = unsafe {
        libc::getxattr(
            f.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(n) {
        Ok(n) => reply(&decode_fcap(&buf[..n as usize])),
        Err(e) => reply(&FileCap {
            read: format!("{e:?}"),
            version: None,
            rootid: None,
            net_raw: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two xattr layouts setcap leaves: v2 (real root) and v3 with the
    /// rootid of the namespace's root (here 100000).
    #[test]
    fn decodes_v2_and_v3_file_capabilities() {
        let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let v2 = decode_fcap(&words(&[0x0200_0001, 1 << 13, 0, 0, 0]));
        assert_eq!((v2.version, v2.rootid, v2.net_raw), (Some(2), None, true));
        let v3 = decode_fcap(&words(&[0x0300_0001, 1 << 13, 0, 0, 0, 100_000]));
        assert_eq!(
            (v3.version, v3.rootid, v3.net_raw),
            (Some(3), Some(100_000), true)
        );
        assert_eq!(decode_fcap(&[1, 2]).version, None);
    }

    /// Six extents that still cover 0..1000 of the outer namespace, root first.
    #[test]
    fn extents_cover_the_outer_range() {
        let six = extents(6);
        assert_eq!(six.lines().count(), 6);
        assert!(six.starts_with("0 0 1\n"));
        assert!(six.ends_with("5 5 995\n"));
        assert_eq!(extents(1), "0 0 1000\n");
    }
}
