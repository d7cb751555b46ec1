//! `isocheck helper …`: the project's own single-threaded child programs.
//!
//! Namespace and seccomp work must not happen in the test process: libtest
//! runs every test on a spawned thread, and in a multithreaded process
//! `unshare(CLONE_NEWUSER)` fails with EINVAL, `unshare(CLONE_NEWPID)` breaks
//! every later fork, and a seccomp kill takes the whole test binary down. So
//! the experiments run this binary as a child: it is single-threaded from
//! `main`, does the syscalls with nix, and reports what it saw as JSON on
//! stdout. It is the kernel-layer twin of `unshare(1)`.

pub mod cgcore;
pub mod cgroup;
pub mod docker;
pub mod escape;
pub mod mnt;
pub mod mount_api;
pub mod net;
pub mod netlink;
pub mod nsfs;
pub mod other_ns;
pub mod pid;
pub mod pid_signals;
pub mod sc_notif;
pub mod sc_stack;
pub mod seccomp;
mod unshare;
pub mod userns;
pub mod uts_ipc_time;
pub mod whoami;

use nix::sys::wait::WaitStatus;
use std::ffi::CString;

/// Where the helper binary is now lives in `scope` (mechanisms build helper
/// commands and must not import this layer); re-exported for the sections.
pub use crate::scope::{any_uid_can_exec, helper_path, set_helper_path};

/// A helper op: its arguments in, its exit code out (replies go to stdout as JSON).
pub type HelperOp = fn(&[String]) -> i32;

pub use crate::namespaces::{host_ns_env, ENV_HOST_NS};

/// Refuses a destructive step meant for a new `kind` namespace (a mount,
/// pivot_root, sethostname, a sysctl write) while this process is still in
/// the namespace the run started in: on a kernel or sandbox where creating
/// a namespace silently does nothing, the step would change the host. The
/// reference is what the harness passed in `ENV_HOST_NS`, else the parent's.
pub fn refuse_in_host_ns(kind: &str) -> Result<(), String> {
    let word = match kind {
        "mnt" => "mount",
        "net" => "network",
        other => other,
    };
    let mine = crate::namespaces::inode("self", kind)
        .map_err(|e| format!("refusing: cannot read my {word} namespace: {e}"))?;
    let host = match crate::namespaces::recorded_host_inode(kind) {
        Some(i) => i,
        None => {
            let ppid = nix::unistd::getppid().to_string();
            crate::namespaces::inode(&ppid, kind)
                .map_err(|e| format!("refusing: no reference {word} namespace: {e}"))?
        }
    };
    if mine == host {
        return Err(format!("refusing: still in the host's {word} namespace"));
    }
    Ok(())
}

/// Every operation of `isocheck helper`, by name: the one place a new op is
/// added (its code lives in the file of the section that uses it).
const OPS: &[(&str, HelperOp)] = &[
    ("unshare", unshare::op_unshare),
    ("whoami", whoami::op_whoami),
    ("pidns-init-death", pid::op_init_death),
    ("pidns-signals", pid::op_signals),
    ("pidns-orphan", pid::op_orphan),
    ("pidns-cross", pid_signals::op_cross),
    ("net-view", net::op_net_view),
    ("net-sysctl", net::op_net_sysctl),
    ("net-exec", net::op_net_exec),
    ("udp-connect", net::op_udp_connect),
    ("udp-echo", net::op_udp_echo),
    ("udp-ask", net::op_udp_ask),
    ("nl-links", netlink::op_links),
    ("sysfs-net", netlink::op_sysfs_net),
    ("bind-list", mnt::op_bind_list),
    ("pivot-shell", mnt::op_pivot_shell),
    ("shm-hold", other_ns::op_shm_hold),
    ("mq-probe", other_ns::op_mq_probe),
    ("try-host-resources", other_ns::op_try_host),
    ("ns-ioctl", nsfs::op_ns_ioctl),
    ("unshare-nocap", nsfs::op_unshare_nocap),
    ("setgroups-deny", userns::op_setgroups_deny),
    ("nested-map", userns::op_nested_map),
    ("net-caps", userns::op_net_caps),
    ("userns-policy", userns::op_userns_policy),
    ("fcap-set", userns::op_fcap_set),
    ("fcap-read", userns::op_fcap_read),
    ("ns-nesting", nsfs::op_ns_nesting),
    ("pidfd-setns", nsfs::op_pidfd_setns),
    ("mnt-rro", mount_api::op_rro),
    ("mnt-write-probe", mount_api::op_write_probe),
    ("mnt-idmap", mount_api::op_idmap),
    ("mnt-slave", mount_api::op_slave),
    ("mnt-remount-flags", mount_api::op_remount_flags),
    ("mnt-proc-subset", mount_api::op_proc_subset),
    ("mnt-owner", mount_api::op_owner),
    ("overlay-copyup", mount_api::op_overlay_copyup),
    ("mount-gate", mount_api::op_mount_gate),
    ("uts-domainname", uts_ipc_time::op_domainname),
    ("timens-boottime", uts_ipc_time::op_boottime),
    ("ipc-objects", uts_ipc_time::op_ipc_objects),
    ("cg-enter", cgroup::op_enter),
    ("cg-park", cgroup::op_park),
    ("cg-alloc", cgroup::op_alloc),
    ("cg-fork", cgroup::op_fork),
    ("cg-burn", cgroup::op_burn),
    ("cg-forker", cgcore::op_forker),
    ("cg-count", cgcore::op_count),
    ("cg-affinity", cgcore::op_affinity),
    ("cg-open-creds", cgcore::op_open_creds),
    ("cgns-open", cgcore::op_cgns_open),
    ("seccomp-exec", seccomp::op_seccomp_exec),
    ("seccomp-thread", seccomp::op_seccomp_thread),
    ("seccomp-profile", seccomp::op_seccomp_profile),
    ("seccomp-probe", seccomp::op_seccomp_probe),
    ("sc-install-rules", sc_stack::op_install_rules),
    ("sc-precedence", sc_stack::op_precedence),
    ("sc-notif", sc_notif::op_notif),
    ("docker-pivot", docker::op_pivot),
    ("esc-ra-own", escape::op_ra_own),
    ("esc-ra-try", escape::op_ra_try),
    ("esc-abstract-serve", escape::op_abstract_serve),
    ("esc-abstract-connect", escape::op_abstract_connect),
    ("esc-umount-reveal", escape::op_umount_reveal),
    ("esc-mknod", escape::op_mknod),
    ("esc-setns", escape::op_setns),
    ("esc-exec-as", escape::op_exec_as),
];

/// The names `isocheck helper` answers to (tests check there are no
/// duplicates).
pub fn op_names() -> impl Iterator<Item = &'static str> {
    OPS.iter().map(|(name, _)| *name)
}

/// Entry point of `isocheck helper OP ARGS…`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let Some((op, rest)) = args.split_first() else {
        eprintln!("isocheck helper: missing operation");
        return 2;
    };
    match OPS.iter().find(|(name, _)| name == op) {
        Some((_, f)) => f(rest),
        None => {
            eprintln!("isocheck helper: unknown operation {op:?}");
            2
        }
    }
}

/// The entry names of a directory, sorted (a mount's view, as a reply field).
pub fn sorted_names(dir: &str) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// The one way an op fails before doing its work: the message on stderr
/// and 125 (like `env(1)` and `unshare(1)`), a code no command under test
/// is expected to return, so the section can tell a helper failure apart.
pub fn die(msg: impl std::fmt::Display) -> i32 {
    eprintln!("isocheck helper: {msg}");
    125
}

/// Prints an op's reply as one JSON line on stdout and exits 0.
pub fn reply<T: serde::Serialize>(r: &T) -> i32 {
    match serde_json::to_string(r) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => die(format!("serialising the reply: {e}")),
    }
}

/// Exits like a shell reports a child: the code, or 128 + signal.
pub fn status_code(ws: WaitStatus) -> i32 {
    match ws {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 125,
    }
}

/// Replaces this process with `cmd` (searched in PATH); returns only on
/// failure, with `die`'s code.
pub fn exec(cmd: &[String]) -> i32 {
    let Some(first) = cmd.first() else {
        return die("no command to run");
    };
    let c: Vec<CString> = cmd
        .iter()
        .map(|s| CString::new(s.as_bytes()).unwrap_or_default())
        .collect();
    match nix::unistd::execvp(&CString::new(first.as_bytes()).unwrap_or_default(), &c) {
        Ok(never) => match never {},
        // Errno's Display: "EACCES: Permission denied", not "Err(EACCES)".
        Err(e) => die(format!("exec {first}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    /// A duplicated name would make the later op unreachable.
    #[test]
    fn op_names_are_unique() {
        let mut names: Vec<&str> = super::op_names().collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
