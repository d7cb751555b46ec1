//! The suite's IPC objects, which cannot carry a tag in a path: SysV shm
//! segments (tagged in their first bytes) and POSIX message queues (listed
//! through a private mqueue mount).

use super::*;

/// Top bytes of the suite's SysV keys (0x15: made in a new ipc ns, 0x16: on
/// the host). Only segments in these families are ever attached by the scan:
/// attaching another program's segment would change its `nattch`.
pub const SHM_KEY_FAMILIES: [u32; 2] = [0x15, 0x16];
const SHM_STAMP: &[u8] = b"isocheck-tag:";

/// Creates a SysV segment with `key` (one of [`SHM_KEY_FAMILIES`]) in the
/// caller's ipc namespace and writes `tag` at its start, so the leak check
/// and the sweeper find it by tag like any named resource.
pub fn create_tagged_shm(key: u32, tag: &str) -> std::io::Result<i32> {
    if !SHM_KEY_FAMILIES.contains(&(key >> 24)) {
        return Err(std::io::Error::other(format!(
            "SysV key {key:#x} is outside the suite's families"
        )));
    }
    // SAFETY: plain syscalls on a segment this function creates; the copy
    // stays inside its 4096 bytes (tags are short).
    unsafe {
        let id = libc::shmget(key as i32, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let at = libc::shmat(id, std::ptr::null(), 0);
        if at as isize == -1 {
            let e = std::io::Error::last_os_error();
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            return Err(e);
        }
        let stamp = [SHM_STAMP, tag.as_bytes(), b"\0"].concat();
        std::ptr::copy_nonoverlapping(stamp.as_ptr(), at as *mut u8, stamp.len().min(4096));
        libc::shmdt(at);
        Ok(id)
    }
}

/// The tag written at the start of segment `id`, if it carries one.
fn shm_tag(id: i32) -> Option<String> {
    // SAFETY: attaches read-only, copies at most 128 bytes (every segment is
    // at least a page), detaches.
    unsafe {
        let at = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
        if at as isize == -1 {
            return None;
        }
        let mut buf = [0u8; 128];
        std::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len());
        libc::shmdt(at);
        let rest = buf.strip_prefix(SHM_STAMP)?;
        let end = rest.iter().position(|b| *b == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    }
}

/// `(shmid, key)` of the suite's key families in `/proc/sysvipc/shm`.
pub fn suite_shm_ids(proc_shm: &str) -> Vec<(i32, u32)> {
    proc_shm
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let key = f.next()?.parse::<i64>().ok()? as u32;
            let id = f.next()?.parse::<i32>().ok()?;
            SHM_KEY_FAMILIES.contains(&(key >> 24)).then_some((id, key))
        })
        .collect()
}

/// The suite's SysV segments in this ipc namespace: `(shmid, key, tag)`.
pub(super) fn tagged_shm() -> Vec<(i32, u32, String)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    suite_shm_ids(&text)
        .into_iter()
        .filter_map(|(id, key)| Some((id, key, shm_tag(id)?)))
        .collect()
}

/// POSIX message queue names of this ipc namespace. They are listed only
/// through an mqueue mount, which this host need not have (this VM has no
/// /dev/mqueue): a short-lived thread mounts one in a mount namespace of its
/// own (`unshare(CLONE_NEWNS)` changes only the calling thread), never on the
/// host, and the namespace dies with the thread.
pub(super) fn mqueue_names() -> Vec<String> {
    let listed = std::thread::spawn(list_mqueues_in_own_mount_ns)
        .join()
        .unwrap_or_else(|_| Err("the listing thread panicked".into()));
    listed.unwrap_or_else(|e| {
        warn_once(&format!("cannot list POSIX message queues: {e}"));
        Vec::new()
    })
}

fn list_mqueues_in_own_mount_ns() -> Result<Vec<String>, String> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // A faked unshare(2) leaves this thread in the run's own table: making
    // `/` private and mounting mqueue there would change the host.
    let mine = crate::namespaces::inode("thread-self", "mnt").map_err(|e| e.to_string())?;
    if Some(mine) == crate::namespaces::host_inode("mnt") {
        return Err(
            "refusing: unshare(CLONE_NEWNS) left this thread in the run's mount namespace".into(),
        );
    }
    // Private first: on a shared / the mqueue mount would reach the host.
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .map_err(|e| format!("making / private: {e}"))?;
    let dir = std::env::temp_dir();
    mount(
        Some("mqueue"),
        &dir,
        Some("mqueue"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mounting mqueue on {}: {e}", dir.display()))?;
    Ok(dir_names(&dir))
}

fn warn_once(msg: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::SeqCst) {
        eprintln!("isocheck: {msg} (the leak check cannot see leftover queues)");
    }
}

/// Removes a segment the scan found; one already gone is not an error.
pub(super) fn remove_shm(id: i32) -> Result<(), String> {
    // SAFETY: IPC_RMID on a segment the scan found carrying the suite's tag.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        // Removed meanwhile by the experiment's own teardown.
        e if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        e => Err(e.to_string()),
    }
}

/// Unlinks a queue the scan found; one already gone is not an error.
pub(super) fn remove_mqueue(name: &str) -> Result<(), String> {
    let c = std::ffi::CString::new(format!("/{name}")).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated queue name.
    if unsafe { libc::mq_unlink(c.as_ptr()) } == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        e if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        e => Err(e.to_string()),
    }
}
