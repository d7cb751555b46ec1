//! Docker-section ops: look around an exported container tree from inside.

use super::{exec, mnt::in_pivoted_root, reply};
use serde::{Deserialize, Serialize};

/// Reply of `docker-pivot`, printed from inside the pivoted root before
/// the tree's own shell runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct PivotView {
    /// getpid() inside: 1 in the new pid namespace.
    pub pid: i32,
    /// The entries of / after pivot_root, sorted.
    pub root: Vec<String>,
    /// The pids the new /proc lists.
    pub proc_pids: Vec<i32>,
}

/// `isocheck helper docker-pivot ROOTFS`: new mnt+pid namespaces, pivot_root
/// into ROOTFS, mount /proc, print what / and /proc hold as JSON, then exec
/// the rootfs's own `/bin/sh -c 'echo $$'`.
pub(super) fn op_pivot(args: &[String]) -> i32 {
    let Some(root) = args.first() else {
        eprintln!("docker-pivot: usage: docker-pivot ROOTFS");
        return 2;
    };
    in_pivoted_root(root, || {
        let view = PivotView {
            pid: nix::unistd::getpid().as_raw(),
            root: names("/"),
            proc_pids: crate::namespaces::pids_in(&names("/proc")),
        };
        let code = reply(&view);
        if code != 0 {
            return code;
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        exec(&["/bin/sh".into(), "-c".into(), "echo $$".into()])
    })
}

/// The entries of directory `d`, sorted (empty if unreadable).
fn names(d: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
