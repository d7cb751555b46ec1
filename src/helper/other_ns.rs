//! UTS/IPC/user-namespace ops: hold IPC objects, probe a queue, try the
//! host's resources as a mapped root.

use super::{die, reply};
use serde::{Deserialize, Serialize};

/// Reply of `try-host-resources`: the errno name (or `ok`) of each try.
#[derive(Debug, Serialize, Deserialize)]
pub struct TryHost {
    /// Writing a host-owned file as the mapped root: errno name or `ok`.
    pub write_host_file: String,
    /// sethostname(2) as the mapped root: errno name or `ok`.
    pub sethostname: String,
}

/// Creates a new POSIX message queue NAME (`/…`) in the caller's ipc ns,
/// owner-only, default attributes; returns its open descriptor.
pub fn mq_create(name: &std::ffi::CStr) -> std::io::Result<libc::mqd_t> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
    // SAFETY: a NUL-terminated name; default attributes.
    let fd = unsafe {
        libc::mq_open(
            name.as_ptr(),
            flags,
            0o600,
            std::ptr::null::<libc::mq_attr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// `shm-hold KEY [MQNAME]`: make a SysV segment with KEY (and a POSIX
/// message queue) in this ipc ns and wait to be killed; both die with the
/// namespace.
pub(super) fn op_shm_hold(args: &[String]) -> i32 {
    let key: u32 = args
        .first()
        .and_then(|k| k.parse::<u32>().ok())
        .unwrap_or(0);
    // Tagged like the host's, so a segment that escaped the namespace is
    // still found by the leak check.
    let tag = std::env::var(crate::cleanup::ENV_TAG).unwrap_or_default();
    if let Err(e) = crate::cleanup::create_tagged_shm(key, &tag) {
        return die(format!("shmget: {e}"));
    }
    if let Some(name) = args
        .get(1)
        .and_then(|n| std::ffi::CString::new(n.as_str()).ok())
    {
        // Held open until the namespace dies with this process.
        if let Err(e) = mq_create(&name) {
            return die(format!("mq_open: {e}"));
        }
    }
    loop {
        nix::unistd::pause();
    }
}

/// `mq-probe NAME`: prints `present` when mq_open(NAME) works in this ipc
/// ns, otherwise the errno's name (ENOENT: not in this namespace).
pub(super) fn op_mq_probe(args: &[String]) -> i32 {
    let Some(name) = args
        .first()
        .and_then(|n| std::ffi::CString::new(n.as_str()).ok())
    else {
        return die("mq-probe needs a queue name");
    };
    // SAFETY: a NUL-terminated name, opened read-only and closed at once.
    let fd = unsafe { libc::mq_open(name.as_ptr(), libc::O_RDONLY) };
    if fd >= 0 {
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::mq_close(fd) };
        println!("present");
    } else {
        println!("{:?}", nix::errno::Errno::last());
    }
    0
}

fn errno_name(r: Result<(), nix::errno::Errno>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// `try-host-resources FILE`: as root of a user namespace, try to open a
/// host-owned file for writing and to set the (host's) hostname.
pub(super) fn op_try_host(args: &[String]) -> i32 {
    let file = args.first().cloned().unwrap_or_default();
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .map(|_| ())
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)));
    let host = nix::unistd::gethostname().unwrap_or_default();
    let set = nix::unistd::sethostname(&host);
    reply(&TryHost {
        write_host_file: errno_name(write),
        sethostname: errno_name(set),
    })
}
