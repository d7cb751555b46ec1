//! Mount-namespace ops: a bind mount listed from inside, a shell in a
//! pivoted root.

use super::{die, exec, refuse_in_host_ns, status_code};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub(super) fn op_bind_list(args: &[String]) -> i32 {
    let (Some(src), Some(dst)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bind-list SRC DST");
        return 2;
    };
    if let Err(e) = mount(
        Some(src.as_str()),
        dst.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        return die(format!("bind mount {src} on {dst}: {e}"));
    }
    match std::fs::read_dir(dst) {
        Ok(rd) => {
            for e in rd.flatten() {
                println!("{}", e.file_name().to_string_lossy());
            }
            0
        }
        Err(e) => die(format!("listing {dst}: {e}")),
    }
}

/// `pivot-shell ROOT CMD…`: new mnt+pid namespaces, pivot_root into ROOT,
/// a fresh /proc, the old root detached, then exec CMD as pid 1.
pub(super) fn op_pivot_shell(args: &[String]) -> i32 {
    let Some((root, cmd)) = args.split_first() else {
        eprintln!("usage: pivot-shell ROOT CMD...");
        return 2;
    };
    in_pivoted_root(root, || exec(cmd))
}

/// New mnt+pid namespaces and a fork: the child, pid 1 of the new pid
/// namespace, pivots into `root` with a fresh /proc and runs `then`; the
/// caller waits for it and returns its status. Shared by `pivot-shell` (a
/// busybox tree) and `docker-pivot` (an exported container).
pub(super) fn in_pivoted_root(root: &str, then: impl FnOnce() -> i32) -> i32 {
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{fork, ForkResult};
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID) {
        return die(format!("unshare(mnt|pid): {e}"));
    }
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => nix::sys::wait::waitpid(child, None)
            .map(status_code)
            .unwrap_or(125),
        Ok(ForkResult::Child) => match pivot_into(root) {
            Ok(()) => then(),
            Err(e) => die(e),
        },
        Err(e) => die(format!("fork: {e}")),
    }
}

/// Makes `root` this process's / with its own /proc; refuses while still in
/// the host's mount namespace.
fn pivot_into(root: &str) -> Result<(), String> {
    refuse_in_host_ns("mnt")?;
    let step = |what: &str, r: nix::Result<()>| r.map_err(|e| format!("{what}: {e}"));
    let none = None::<&str>;
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    step("making / private", mount(none, "/", none, private, none))?;
    // pivot_root needs the new root to be a mount point.
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    step(
        "bind-mounting the new root onto itself",
        mount(Some(root), root, none, bind, none),
    )?;
    step("chdir", nix::unistd::chdir(root))?;
    // pivot_root(".", "."): the old root ends up stacked under the new one
    // and is detached right away; no put_old directory needed.
    step("pivot_root", nix::unistd::pivot_root(".", "."))?;
    step("detaching the old root", umount2(".", MntFlags::MNT_DETACH))?;
    let _ = nix::unistd::chdir("/");
    let _ = std::fs::create_dir_all("/proc");
    let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    step(
        "mounting /proc",
        mount(Some("proc"), "/proc", Some("proc"), proc_flags, none),
    )
}
