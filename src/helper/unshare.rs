//! `isocheck helper unshare`: the kernel-layer twin of `unshare(1)`, and
//! `user_ns_split` for ops that map root to an unprivileged uid.

use super::{die, exec, refuse_in_host_ns, status_code};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use std::io::Write;

/// `refuse_in_host_ns` for every namespace type in `flags` that a step
/// after unshare(2) relies on.
fn refuse_unless_unshared(flags: CloneFlags) -> Result<(), String> {
    for (flag, kind) in [
        (CloneFlags::CLONE_NEWNS, "mnt"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
    ] {
        if flags.contains(flag) {
            refuse_in_host_ns(kind)?;
        }
    }
    Ok(())
}

fn ns_flag(kind: &str) -> Option<CloneFlags> {
    Some(match kind {
        "pid" => CloneFlags::CLONE_NEWPID,
        "mnt" => CloneFlags::CLONE_NEWNS,
        "net" => CloneFlags::CLONE_NEWNET,
        "uts" => CloneFlags::CLONE_NEWUTS,
        "ipc" => CloneFlags::CLONE_NEWIPC,
        "user" => CloneFlags::CLONE_NEWUSER,
        "cgroup" => CloneFlags::CLONE_NEWCGROUP,
        // nix 0.29 has no constant for CLONE_NEWTIME.
        "time" => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        _ => return None,
    })
}

fn write_file(path: &str, data: &str) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("writing {data:?} to {path}: {e}"))
}

/// The options of `helper unshare`, parsed once.
struct Unshare {
    flags: CloneFlags,
    fork: bool,
    mount_proc: bool,
    print_pid: bool,
    propagation: String,
    hostname: Option<String>,
    mono_offset: Option<i64>,
    map_root: Option<u32>,
    cmd: Vec<String>,
}

impl Unshare {
    fn parse(args: &[String]) -> Result<Unshare, String> {
        let mut u = Unshare {
            flags: CloneFlags::empty(),
            fork: false,
            mount_proc: false,
            print_pid: false,
            propagation: "private".into(),
            hostname: None,
            mono_offset: None,
            map_root: None,
            cmd: Vec::new(),
        };
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let mut val = || {
                i += 1;
                args.get(i).cloned().unwrap_or_default()
            };
            match a {
                "--ns" => {
                    for k in val().split(',').filter(|k| !k.is_empty()) {
                        u.flags |= ns_flag(k).ok_or(format!("unknown namespace type {k}"))?;
                    }
                }
                "--fork" => u.fork = true,
                "--mount-proc" => u.mount_proc = true,
                "--print-pid" => u.print_pid = true,
                "--propagation" => u.propagation = val(),
                "--hostname" => u.hostname = Some(val()),
                "--monotonic-offset" => u.mono_offset = val().parse().ok(),
                "--map-root-to" => u.map_root = val().parse().ok(),
                "--" => {
                    u.cmd = args[i + 1..].to_vec();
                    break;
                }
                other => return Err(format!("unshare: unknown option {other}")),
            }
            i += 1;
        }
        if u.flags.contains(CloneFlags::CLONE_NEWPID) || u.mount_proc {
            u.fork = true;
        }
        Ok(u)
    }
}

pub(super) fn op_unshare(args: &[String]) -> i32 {
    let u = match Unshare::parse(args) {
        Ok(u) => u,
        Err(e) => return die(e),
    };
    if let Some(uid) = u.map_root {
        // Only a process outside the new user namespace may map root to an
        // unprivileged uid: split in two, the parent writes the maps.
        return user_ns_split(u.flags, uid, |rest| finish_unshare(&u, rest));
    }
    // The harness's tests simulate a kernel or sandbox on which unshare(2)
    // silently does nothing, to prove the steps after it refuse to run.
    let fake = std::env::var_os("ISOCHECK_FAKE_UNSHARE").is_some();
    if let Err(e) = if fake { Ok(()) } else { unshare(u.flags) } {
        return die(format!("unshare({:?}): {e}", u.flags));
    }
    finish_unshare(&u, u.flags)
}

fn user_ns_split(flags: CloneFlags, uid: u32, then: impl FnOnce(CloneFlags) -> i32) -> i32 {
    let (r1, w1) = nix::unistd::pipe().expect("pipe");
    let (r2, w2) = nix::unistd::pipe().expect("pipe");
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r1);
            drop(w2);
            let user_only = CloneFlags::CLONE_NEWUSER;
            if let Err(e) = unshare(user_only) {
                return die(format!("unshare(CLONE_NEWUSER): {e}"));
            }
            let _ = nix::unistd::write(&w1, b"u");
            drop(w1);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r2), &mut b);
            // Credentials keep kuid 0 (unmapped, seen as 65534) until the
            // process switches to the mapped root.
            let root = nix::unistd::Uid::from_raw(0);
            let groot = nix::unistd::Gid::from_raw(0);
            if let Err(e) = nix::unistd::setresgid(groot, groot, groot)
                .and_then(|_| nix::unistd::setresuid(root, root, root))
            {
                return die(format!("becoming the mapped root: {e}"));
            }
            let rest = flags - user_only;
            if let Err(e) = unshare(rest) {
                return die(format!("unshare({rest:?}) inside the user namespace: {e}"));
            }
            then(rest)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w1);
            drop(r2);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r1), &mut b);
            let p = child.as_raw();
            let r = write_file(&format!("/proc/{p}/setgroups"), "deny")
                .and_then(|_| write_file(&format!("/proc/{p}/uid_map"), &format!("0 {uid} 1\n")))
                .and_then(|_| write_file(&format!("/proc/{p}/gid_map"), &format!("0 {uid} 1\n")));
            if let Err(e) = r {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
                return die(e);
            }
            let _ = nix::unistd::write(&w2, b"g");
            drop(w2);
            waitpid(child, None).map(status_code).unwrap_or(125)
        }
        Err(e) => die(format!("fork: {e}")),
    }
}

/// After unshare(2): propagation, hostname, time offsets, then exec, or
/// fork (the child mounting /proc) and wait.
fn finish_unshare(u: &Unshare, flags: CloneFlags) -> i32 {
    if let Err(e) = configure(u, flags) {
        return die(e);
    }
    if !u.fork {
        if u.mount_proc {
            return die("--mount-proc needs --fork");
        }
        return exec(&u.cmd);
    }
    fork_and_wait(u)
}

/// The steps inside the new namespaces before any process enters them:
/// propagation of /, hostname, the monotonic offset.
fn configure(u: &Unshare, flags: CloneFlags) -> Result<(), String> {
    refuse_unless_unshared(flags)?;
    if flags.contains(CloneFlags::CLONE_NEWNS) && u.propagation != "unchanged" {
        let p = match u.propagation.as_str() {
            "private" => MsFlags::MS_PRIVATE,
            "shared" => MsFlags::MS_SHARED,
            "slave" => MsFlags::MS_SLAVE,
            other => return Err(format!("unknown propagation {other}")),
        };
        let none = None::<&str>;
        mount(none, "/", none, MsFlags::MS_REC | p, none)
            .map_err(|e| format!("making / {}: {e}", u.propagation))?;
    }
    if let Some(h) = &u.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    if let Some(off) = u.mono_offset {
        // Offsets can only be written before the first process enters the
        // new time namespace, i.e. before the fork that follows.
        write_file("/proc/self/timens_offsets", &format!("monotonic {off} 0\n"))?;
    }
    Ok(())
}

/// Forks the command's process (it mounts /proc first when asked), prints
/// its pid once it is ready when asked, and returns its status.
fn fork_and_wait(u: &Unshare) -> i32 {
    // `child-pid` is printed only once the child is ready (its /proc
    // mounted): whoever reads it may nsenter at once and must see the
    // namespace's /proc, not the host's. The child closes its end of the
    // pipe (by exec, close-on-exec) when ready, or by dying.
    let (ready_r, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return die(format!("pipe: {e}")),
    };
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(ready_r);
            // Die with the helper: a killed helper must not leave a
            // namespace init behind.
            // SAFETY: plain prctl in the child.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            if u.mount_proc {
                if let Err(e) = mount_proc() {
                    return die(e);
                }
            }
            exec(&u.cmd)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            if u.print_pid {
                // EOF: the child exec'd (ready) or died (waitpid tells).
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut b);
                println!("child-pid {}", child.as_raw());
                let _ = std::io::stdout().flush();
            }
            drop(ready_r);
            waitpid(child, None).map(status_code).unwrap_or(125)
        }
        Err(e) => die(format!("fork: {e}")),
    }
}

/// A fresh /proc for the new pid namespace; refused in the host's mount
/// namespace.
fn mount_proc() -> Result<(), String> {
    refuse_in_host_ns("mnt")?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mounting /proc: {e}"))
}
