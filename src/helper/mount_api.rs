//! Mount ops beyond mount(2): the new mount API (mount_setattr,
//! open_tree, move_mount), propagation between a parent and a slave copy,
//! locked mount flags, proc's subset=pid. Every op runs in a mount ns the
//! suite holds and refuses to act in the run's own.

use super::nsfs::errno_name;
use super::{die, refuse_in_host_ns, reply};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

/// `struct mount_attr` of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cpath(p: &str) -> CString {
    CString::new(p).unwrap_or_default()
}

fn mount_setattr(
    dirfd: RawFd,
    path: &str,
    flags: libc::c_uint,
    attr: &MountAttr,
) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a NUL-terminated path and a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            p.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

fn open_tree(path: &str, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    let p = cpath(path);
    // SAFETY: a NUL-terminated path; the result is a new descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    // SAFETY: a descriptor the kernel just returned.
    Errno::result(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn move_mount(from: &OwnedFd, to: &str) -> Result<(), Errno> {
    let (empty, t) = (cpath(""), cpath(to));
    // SAFETY: NUL-terminated paths; `from` is a detached mount's descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn guard() -> Result<(), i32> {
    refuse_in_host_ns("mnt").map_err(die)
}

/// Reply of `mnt-rro`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rro {
    /// mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) on the top.
    pub setattr: String,
}

/// `mnt-rro TOP`: mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) on TOP.
pub(super) fn op_rro(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let top = args.first().map(String::as_str).unwrap_or("/nonexistent");
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    reply(&Rro {
        setattr: errno_name(&mount_setattr(libc::AT_FDCWD, top, AT_RECURSIVE, &attr)),
    })
}

/// `mnt-write-probe NAME=DIR…`: create (then remove) a file in each DIR;
/// the errno name (or "ok") by NAME.
pub(super) fn op_write_probe(args: &[String]) -> i32 {
    let mut out = BTreeMap::new();
    for a in args {
        let (name, dir) = a.split_once('=').unwrap_or((a, a));
        let f = std::path::Path::new(dir).join(format!("probe-{}", std::process::id()));
        let r = std::fs::File::create(&f).map(drop).map_err(io_errno);
        if r.is_ok() {
            let _ = std::fs::remove_file(&f);
        }
        out.insert(name.to_string(), errno_name(&r));
    }
    reply(&out)
}

/// Reply of `mnt-idmap`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Idmap {
    /// open_tree(OPEN_TREE_CLONE) of the source.
    pub open_tree: String,
    /// mount_setattr(MOUNT_ATTR_IDMAP) of the detached clone, user ns `0 10000 10000`.
    pub idmap_detached: String,
    /// move_mount of the idmapped clone onto the target.
    pub move_mount: String,
    /// The same idmap on the attached source mount.
    pub idmap_attached: String,
    /// An idmap with the initial user ns, on a fresh detached clone.
    pub idmap_initial_userns: String,
}

/// A user ns fd whose map is `0 10000 10000`: a child makes the ns, this
/// process writes the maps, opens the ns and lets the child go.
fn mapped_userns() -> Result<OwnedFd, String> {
    use nix::sched::CloneFlags;
    let (child, unshared) = super::nsfs::paused_child(None, CloneFlags::CLONE_NEWUSER)?;
    let r = if unshared != "ok" {
        Err(format!("unshare(CLONE_NEWUSER): {unshared}"))
    } else {
        let p = child.as_raw();
        ["uid_map", "gid_map"]
            .iter()
            .try_for_each(|m| std::fs::write(format!("/proc/{p}/{m}"), "0 10000 10000\n"))
            .map_err(|e| format!("writing the maps: {e}"))
            .and_then(|_| {
                std::fs::File::open(format!("/proc/{p}/ns/user"))
                    .map(OwnedFd::from)
                    .map_err(|e| format!("opening the user ns: {e}"))
            })
    };
    let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    r
}

fn idmap_attr(userns: &impl AsRawFd) -> MountAttr {
    MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    }
}

/// `mnt-idmap SRC DST`: an idmapped detached clone of SRC moved onto DST,
/// then the two refusals (attached mount, initial user ns).
pub(super) fn op_idmap(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let [src, dst] = args else {
        return die("usage: mnt-idmap SRC DST");
    };
    let userns = match mapped_userns() {
        Ok(fd) => fd,
        Err(e) => return die(e),
    };
    let attr = idmap_attr(&userns);
    let clone = open_tree(src, OPEN_TREE_CLONE);
    let idmap = clone
        .as_ref()
        .map_err(|e| *e)
        .and_then(|fd| mount_setattr(fd.as_raw_fd(), "", libc::AT_EMPTY_PATH as u32, &attr));
    let moved = match (&clone, &idmap) {
        (Ok(fd), Ok(())) => errno_name(&move_mount(fd, dst)),
        _ => "not-tried".into(),
    };
    let attached = mount_setattr(libc::AT_FDCWD, src, 0, &attr);
    let init = std::fs::File::open("/proc/self/ns/user").map_err(io_errno);
    let initial = init.and_then(|ns| {
        let fd = open_tree(src, OPEN_TREE_CLONE)?;
        mount_setattr(
            fd.as_raw_fd(),
            "",
            libc::AT_EMPTY_PATH as u32,
            &idmap_attr(&ns),
        )
    });
    reply(&Idmap {
        open_tree: errno_name(&clone),
        idmap_detached: errno_name(&idmap),
        move_mount: moved,
        idmap_attached: errno_name(&attached),
        idmap_initial_userns: errno_name(&initial),
    })
}

/// `uid:gid` of a path, as stat(1) -c %u:%g prints it.
pub fn owner_of(p: &str) -> String {
    std::fs::metadata(p)
        .map(|m| format!("{}:{}", m.uid(), m.gid()))
        .unwrap_or_else(|e| format!("{:?}", io_errno(e)))
}

/// Reply of `mnt-slave`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Slave {
    /// The copy's propagation: "slave" or "unchanged" (a shared peer).
    pub copy: String,
    /// A tmpfs mounted by the parent under the shared dir shows in the copy.
    pub parent_to_copy: bool,
    /// A tmpfs mounted by the copy shows in the parent.
    pub copy_to_parent: bool,
    /// mount(MS_BIND) of a dir made unbindable.
    pub bind_unbindable: String,
}

fn tmpfs(at: &str) -> Result<(), Errno> {
    mount(
        Some("isocheck"),
        at,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
}

fn mounted(at: &str) -> bool {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    super::escape::mount_entry(&mi, std::path::Path::new(at)).is_some()
}

fn signal_wait(w: &OwnedFd, r: &OwnedFd) {
    let _ = nix::unistd::write(w, b"x");
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(r.as_raw_fd(), &mut b);
}

/// The copy's side of `mnt-slave`: a new mount ns (a slave unless
/// `peer`), then, once told, look for the parent's mount, make its own and
/// say what it saw; the copy's mounts die with it.
fn copy_side(peer: bool, from_parent: &str, from_copy: &str, [w1, r2, w3]: [&OwnedFd; 3]) -> ! {
    let none = None::<&str>;
    // The copy must really be a new mount ns (not the holder's, whose `/`
    // the slave propagation would change) before anything is mounted.
    let parent = crate::namespaces::inode("self", "mnt").ok();
    let r = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS);
    let moved = crate::namespaces::inode("self", "mnt").ok() != parent;
    if r.is_err() || !moved || refuse_in_host_ns("mnt").is_err() {
        // SAFETY: leave at once.
        unsafe { libc::_exit(125) }
    }
    if !peer && mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none).is_err() {
        // SAFETY: leave at once.
        unsafe { libc::_exit(125) }
    }
    signal_wait(w1, r2);
    let seen = mounted(from_parent);
    let _ = tmpfs(from_copy);
    let _ = nix::unistd::write(w3, if seen { b"1" } else { b"0" });
    // SAFETY: leave at once.
    unsafe { libc::_exit(0) }
}

/// UNB bound on itself and made unbindable, then bound on TARGET.
fn bind_unbindable(unb: &str, target: &str) -> Result<(), Errno> {
    let none = None::<&str>;
    mount(Some(unb), unb, none, MsFlags::MS_BIND, none)
        .and_then(|_| mount(none, unb, none, MsFlags::MS_UNBINDABLE, none))
        .and_then(|_| mount(Some(unb), target, none, MsFlags::MS_BIND, none))
}

/// `mnt-slave SHARED UNBINDABLE TARGET [--shared]`: a child copies this
/// mount ns (as a slave, or unchanged: a shared peer); this process mounts
/// under SHARED/from-parent, the child under SHARED/from-copy; each looks
/// for the other's. Then UNBINDABLE, made unbindable, is bind-mounted on
/// TARGET.
pub(super) fn op_slave(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let (Some(shared), Some(unb), Some(target)) = (args.first(), args.get(1), args.get(2)) else {
        return die("usage: mnt-slave SHARED UNBINDABLE TARGET [--shared]");
    };
    let peer = args.iter().any(|a| a == "--shared");
    let (from_parent, from_copy) = (
        format!("{shared}/from-parent"),
        format!("{shared}/from-copy"),
    );
    let (Ok((r1, w1)), Ok((r2, w2)), Ok((r3, w3))) = (
        nix::unistd::pipe(),
        nix::unistd::pipe(),
        nix::unistd::pipe(),
    ) else {
        return die("pipe");
    };
    // SAFETY: the helper is single-threaded.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => copy_side(peer, &from_parent, &from_copy, [&w1, &r2, &w3]),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return die(format!("fork: {e}")),
    };
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(r1.as_raw_fd(), &mut b);
    let first = tmpfs(&from_parent);
    let _ = nix::unistd::write(&w2, b"g");
    let n = nix::unistd::read(r3.as_raw_fd(), &mut b).unwrap_or(0);
    let _ = nix::sys::wait::waitpid(child, None);
    if first.is_err() || n == 0 {
        return die(format!("the parent's mount ({first:?}) or the copy failed"));
    }
    let copy_to_parent = mounted(&from_copy);
    let unbindable = bind_unbindable(unb, target);
    reply(&Slave {
        copy: if peer { "unchanged" } else { "slave" }.into(),
        parent_to_copy: b[0] == b'1',
        copy_to_parent,
        bind_unbindable: errno_name(&unbindable),
    })
}

/// The flag sets `esc.mount-flags-locked` remounts with: each clears one of
/// ro, nosuid, nodev, noexec; the last keeps all four. The clearing word is
/// spelled out: mount(8) on the new mount API leaves a flag it is not told
/// about as it was (and still exits 0); mount(2) reads its absence.
pub const REMOUNTS: [(&str, &str); 5] = [
    ("clear_ro", "rw,nosuid,nodev,noexec"),
    ("clear_nosuid", "ro,suid,nodev,noexec"),
    ("clear_nodev", "ro,nosuid,dev,noexec"),
    ("clear_noexec", "ro,nosuid,nodev,exec"),
    ("keep_all", "ro,nosuid,nodev,noexec"),
];

fn ms_flags(opts: &str) -> MsFlags {
    opts.split(',').fold(MsFlags::empty(), |f, o| {
        f | match o {
            "ro" => MsFlags::MS_RDONLY,
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            _ => MsFlags::empty(),
        }
    })
}

fn options_of(t: &str) -> String {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    super::escape::mount_entry(&mi, std::path::Path::new(t))
        .map(|e| e.1)
        .unwrap_or_default()
}

/// `mnt-remount-flags T`: mount(MS_REMOUNT|MS_BIND|flags) of T for each
/// of `REMOUNTS`; the errno names, and T's per-mount options afterwards.
pub(super) fn op_remount_flags(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let t = args.first().map(String::as_str).unwrap_or("/nonexistent");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let none = None::<&str>;
    for (name, opts) in REMOUNTS {
        let f = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | ms_flags(opts);
        out.insert(name.into(), errno_name(&mount(none, t, none, f, none)));
        // What the first attempt left shows whether `ro` could be cleared.
        if name == "clear_ro" {
            out.insert("options_after_clear_ro".into(), options_of(t));
        }
    }
    out.insert("options_after".into(), options_of(t));
    reply(&out)
}

/// Reply of `mnt-proc-subset`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcSubset {
    /// The mount(2) of proc (with `subset=pid`, or default options).
    pub mount: String,
    /// Entries that are neither a pid nor self/thread-self.
    pub other_entries: Vec<String>,
    /// Whether any pid directory is listed.
    pub has_pids: bool,
    /// stat of sys, sysrq-trigger, cpuinfo under the mount.
    pub lookups: BTreeMap<String, String>,
}

/// What a proc mount at `dir` lists and which of three files it has.
fn proc_look(dir: &str, mount: String) -> ProcSubset {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let is_pid = |n: &String| n.chars().all(|c| c.is_ascii_digit());
    let lookups = ["sys", "sysrq-trigger", "cpuinfo"]
        .iter()
        .map(|n| {
            let r = std::fs::symlink_metadata(format!("{dir}/{n}"))
                .map(drop)
                .map_err(io_errno);
            (n.to_string(), errno_name(&r))
        })
        .collect();
    ProcSubset {
        mount,
        has_pids: names.iter().any(is_pid),
        other_entries: names
            .iter()
            .filter(|n| !is_pid(n) && *n != "self" && *n != "thread-self")
            .cloned()
            .collect(),
        lookups,
    }
}

/// `mnt-proc-subset DIR [--default]`: new mnt+pid namespaces; the child
/// (pid 1) mounts proc on DIR with subset=pid (or default) and looks.
pub(super) fn op_proc_subset(args: &[String]) -> i32 {
    use nix::sched::CloneFlags;
    let Some(dir) = args.first() else {
        return die("usage: mnt-proc-subset DIR [--default]");
    };
    let data = (!args.iter().any(|a| a == "--default")).then_some("subset=pid");
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID) {
        return die(format!("unshare(mnt|pid): {e}"));
    }
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            if let Err(c) = guard() {
                return c;
            }
            let none = None::<&str>;
            if let Err(e) = mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none) {
                return die(format!("making / private: {e}"));
            }
            let m = mount(
                Some("proc"),
                dir.as_str(),
                Some("proc"),
                MsFlags::empty(),
                data,
            );
            reply(&proc_look(dir, errno_name(&m)))
        }
        Ok(ForkResult::Parent { child }) => nix::sys::wait::waitpid(child, None)
            .map(super::status_code)
            .unwrap_or(125),
        Err(e) => die(format!("fork: {e}")),
    }
}

/// `mnt-owner PATH`: `{"owner": "uid:gid"}` by stat(2).
pub(super) fn op_owner(args: &[String]) -> i32 {
    let p = args.first().map(String::as_str).unwrap_or("/nonexistent");
    reply(&BTreeMap::from([("owner", owner_of(p))]))
}

/// Reply of `overlay-copyup`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Copyup {
    /// mount(overlay) in this (user-owned) mount ns.
    pub mount: String,
    /// open(MERGED/FILE, O_WRONLY|O_APPEND): the copy-up.
    pub open_for_write: String,
}

/// `overlay-copyup LOWER UPPER WORK MERGED FILE`: mount an overlay and open
/// FILE through it for writing, which copies it up.
pub(super) fn op_overlay_copyup(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let [lower, upper, work, merged, file] = args else {
        return die("usage: overlay-copyup LOWER UPPER WORK MERGED FILE");
    };
    let opts = format!("lowerdir={lower},upperdir={upper},workdir={work}");
    let m = mount(
        Some("overlay"),
        merged.as_str(),
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    );
    let open = if m.is_ok() {
        let r = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("{merged}/{file}"))
            .map(drop)
            .map_err(io_errno);
        errno_name(&r)
    } else {
        "not-tried".into()
    };
    reply(&Copyup {
        mount: errno_name(&m),
        open_for_write: open,
    })
}

/// The filesystem types `mount-gate` tries, with their mount data.
pub const GATE_TYPES: [&str; 9] = [
    "tmpfs", "ramfs", "proc", "sysfs", "mqueue", "devpts", "cgroup2", "overlay", "ext4",
];

/// Reply of `mount-gate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MountGate {
    /// mount(2) of each type on DIR/TYPE: "ok" (then unmounted) or the errno.
    pub mount: BTreeMap<String, String>,
    /// fsopen("ext4"): "ok" or the errno.
    pub fsopen: String,
    /// fsconfig(FSCONFIG_SET_STRING, "source", LOOPDEV).
    pub fsconfig_source: String,
    /// fsconfig(FSCONFIG_CMD_CREATE): where a block filesystem is refused.
    pub fsconfig_create: String,
}

fn fsopen(fs: &str) -> Result<OwnedFd, Errno> {
    let f = cpath(fs);
    // SAFETY: fsopen(name, FSOPEN_CLOEXEC) returns a new descriptor.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, f.as_ptr(), 1) };
    // SAFETY: the descriptor the kernel just returned.
    Errno::result(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn fsconfig(fd: &OwnedFd, cmd: u32, key: Option<&str>, value: Option<&str>) -> Result<(), Errno> {
    let (k, v) = (key.map(cpath), value.map(cpath));
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: NUL-terminated strings or NULL, as the command takes them.
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fd.as_raw_fd(), cmd, ptr(&k), ptr(&v), 0) };
    Errno::result(r).map(drop)
}

/// ext4 through the new mount API: fsopen, the source, then the superblock.
fn fsopen_ext4(dev: &str) -> (String, String, String) {
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    let fd = match fsopen("ext4") {
        Ok(fd) => fd,
        Err(e) => return (format!("{e:?}"), "not-tried".into(), "not-tried".into()),
    };
    const FSCONFIG_SET_FLAG: u32 = 0;
    let src = fsconfig(&fd, FSCONFIG_SET_STRING, Some("source"), Some(dev))
        .and_then(|_| fsconfig(&fd, FSCONFIG_SET_FLAG, Some("ro"), None));
    let create = if src.is_ok() {
        errno_name(&fsconfig(&fd, FSCONFIG_CMD_CREATE, None, None))
    } else {
        "not-tried".into()
    };
    ("ok".into(), errno_name(&src), create)
}

/// Whether this process shares the run's cgroup namespace (unknown: yes).
fn in_runs_cgroup_ns() -> bool {
    let mine = crate::namespaces::inode("self", "cgroup").ok();
    mine.is_none() || mine == crate::namespaces::host_inode("cgroup")
}

/// `mount-gate DIR LOOPDEV`: mount each of `GATE_TYPES` on DIR/TYPE (ext4
/// from LOOPDEV, overlay over DIR/ovl-{lower,upper,work}), unmounting each
/// that worked; then ext4 through fsopen/fsconfig.
pub(super) fn op_mount_gate(args: &[String]) -> i32 {
    if let Err(c) = guard() {
        return c;
    }
    let [dir, dev] = args else {
        return die("usage: mount-gate DIR LOOPDEV");
    };
    let ovl = format!("lowerdir={dir}/ovl-lower,upperdir={dir}/ovl-upper,workdir={dir}/ovl-work");
    let mut out = BTreeMap::new();
    for fs in GATE_TYPES {
        let target = format!("{dir}/{fs}");
        let (source, data) = match fs {
            "ext4" => (dev.as_str(), None),
            "overlay" => ("overlay", Some(ovl.as_str())),
            "tmpfs" | "ramfs" => ("isocheck", Some("size=1m")),
            other => (other, None),
        };
        // A cgroup2 mount from the init cgroup namespace resets the host's
        // cgroup2 root options (nsdelegate, memory_recursiveprot) to its own:
        // seen as the 6.12 guest losing nsdelegate mid-run. Only a cgroup ns
        // of the row's own may mount it.
        if fs == "cgroup2" && in_runs_cgroup_ns() {
            out.insert(fs.to_string(), "not-tried-in-the-runs-cgroup-ns".into());
            continue;
        }
        // Read-only for all: the suite's loop device is attached read-only.
        let flags =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        let r = mount(Some(source), target.as_str(), Some(fs), flags, data);
        if r.is_ok() {
            let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        out.insert(fs.to_string(), errno_name(&r));
    }
    let (fsopen, fsconfig_source, fsconfig_create) = fsopen_ext4(dev);
    reply(&MountGate {
        mount: out,
        fsopen,
        fsconfig_source,
        fsconfig_create,
    })
}
