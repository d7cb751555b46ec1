//! Catalogue section 3: the mount namespace.

use crate::experiment::{Ctx, Experiment, Outcome, Variant};
use crate::helper;
use crate::host::unescape_mount;
use crate::needs::{cmd, Need, ROOT};
use crate::process::{run, run_ok};
use crate::{broken, check, check_eq, needs};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod beyond;

/// Section 3's rows (mount namespace), in run order; `experiments::all` collects them.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("mnt.proc-view-differs", proc_view_differs)
        .asserts("`ls /proc` inside unshare --pid --mount-proc lists only the namespace's pids; the host's /proc is unchanged")
        .anchor("LTP pidns03")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::UNSHARE]),
    Experiment::new("mnt.findmnt-sees-own-table", findmnt_sees_own_table)
        .asserts("findmnt of the inner process shows a new proc mount stacked on /proc whose listing is the new pid ns ([1]); the host's /proc stack is unchanged while it lives")
        .needs(needs![ROOT, crate::needs::kc::PID_NS, cmd::UNSHARE, cmd::FINDMNT]),
    Experiment::new("mnt.bind-mount-invisible-to-host", bind_mount_invisible)
        .asserts("`mount --bind /usr/bin DIR` in a new mount ns shows /usr/bin's entries inside; on the host DIR stays empty and unmounted")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::MOUNT])
        .control("the same bind mount without a new mount ns"),
    Experiment::new("mnt.propagation", propagation)
        .asserts("under a shared parent a mount made after unshare -m --propagation unchanged propagates to the host; with private it does not")
        .anchor("LTP mountns01").anchor("LTP mountns02").anchor("runtime-tools linux_rootfs_propagation").anchor("runtime-tools linux_rootfs_propagation_shared").anchor("youki rootfs_propagation")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::MOUNT]),
    Experiment::new("mnt.rootfs-pivot", rootfs_pivot)
        .asserts("a shell pivot_root'ed into a busybox rootfs in new mnt+pid ns sees only the rootfs files and is pid 1")
        .needs(needs![ROOT, cmd::BUSYBOX]),
    Experiment::new("mnt.propagation-slave-unbindable", beyond::propagation_slave_unbindable)
        .asserts("under a slave copy of a suite-held mount ns a mount made in the parent appears in the copy and one made in the copy does not appear in the parent (mount(2) and unshare --propagation slave alike); a bind of a dir made unbindable fails EINVAL")
        .anchor("LTP mountns03").anchor("LTP mountns04").anchor("runtime-tools linux_rootfs_propagation_unbindable")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::FINDMNT])
        .control("a shared peer (--propagation unchanged): the copy's mount appears in the parent"),
    Experiment::new("mnt.recursive-readonly", beyond::recursive_readonly)
        .asserts("mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) on a suite tmpfs tree makes every submount read-only: a file create fails EROFS in each (helper and touch), findmnt shows ro on all")
        .anchor("kselftest mount_setattr basic_recursive").anchor("youki mounts_recursive")
        .needs(needs![ROOT, &[Need::Kernel(5, 12)], cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::FINDMNT])
        .control("mount -o remount,ro,bind of the top only: the submounts stay writable"),
    Experiment::new("mnt.idmapped-mount", beyond::idmapped_mount)
        .asserts("a detached clone of a suite tmpfs idmapped with a user ns `0 10000 10000` shows a 0:0 file as 10000:10000 through the new mount, 0:0 through the original; idmapping the attached mount fails EINVAL, with the initial user ns EPERM")
        .anchor("kselftest mount_setattr idmapped")
        .needs(needs![ROOT, &[Need::Kernel(5, 12)], cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::FINDMNT])
        .control("stat through the original mount: 0:0"),
    Experiment::new("mnt.proc-subset-pid", beyond::proc_subset_pid)
        .asserts("proc mounted with subset=pid in a new mnt+pid ns lists only pids, self and thread-self: sys, sysrq-trigger and cpuinfo are ENOENT (helper mount(2) and mount -o subset=pid alike)")
        .anchor("kselftest proc-subset-pid")
        .needs(needs![ROOT, &[Need::Kernel(5, 8)], cmd::UNSHARE, cmd::MOUNT, crate::needs::kc::PID_NS])
        .control("a default proc mount in the same namespaces: sys is there"),
];

/// Mount points of a mountinfo text, and their mount ids.
pub fn mount_table(mountinfo: &str) -> Vec<(u64, PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?.parse().ok()?;
            let mnt = f.nth(3)?;
            let fstype = l
                .split_once(" - ")?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some((id, PathBuf::from(unescape_mount(mnt)), fstype))
        })
        .collect()
}

fn host_mountinfo() -> anyhow::Result<String> {
    crate::experiment::read("/proc/self/mountinfo")
}

fn proc_mount_id(table: &[(u64, PathBuf, String)]) -> Option<u64> {
    table
        .iter()
        .rev()
        .find(|(_, p, t)| p == Path::new("/proc") && t == "proc")
        .map(|(id, _, _)| *id)
}

fn numeric(listing: &str) -> Vec<i64> {
    let mut v: Vec<i64> = listing
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort();
    v
}

fn proc_view_differs(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let host_before = host_mountinfo()?;
    let host_ls_before = numeric(&run_ok(ctx.cmd("ls").arg("/proc"))?);
    let inside = numeric(&run_ok(ctx.cmd("unshare").args([
        "--fork",
        "--pid",
        "--mount-proc",
        "ls",
        "/proc",
    ]))?);
    let me = crate::experiments::pid::whoami_in(ctx, &["--ns", "pid,mnt", "--mount-proc"])?;
    let host_after = host_mountinfo()?;
    let host_ls_after = numeric(&run_ok(ctx.cmd("ls").arg("/proc"))?);
    ctx.observe("inside_ls_proc", &inside);
    ctx.observe("inside_proc_pids_kernel", &me.proc_pids);
    ctx.measure("host_pids_before", host_ls_before.len());
    ctx.measure("host_pids_after", host_ls_after.len());
    check_eq!(inside, vec![1], "numeric entries of `ls /proc` inside");
    check_eq!(
        me.proc_pids,
        vec![1],
        "numeric entries of /proc read by the child"
    );
    let me_pid = std::process::id() as i64;
    check!(
        host_ls_after.contains(&me_pid) && host_ls_after.len() > 3,
        "the host's /proc should still list the host's processes (including {me_pid}), lists {}",
        host_ls_after.len()
    );
    check_eq!(
        proc_mount_id(&mount_table(&host_after)),
        proc_mount_id(&mount_table(&host_before)),
        "mount id of the host's /proc before and after"
    );
    Ok(())
}

/// Proc mounts stacked exactly on /proc in `findmnt -n -r -o TARGET,FSTYPE`.
fn stacked_proc(findmnt: &str) -> usize {
    findmnt
        .lines()
        .filter(|l| l.split_whitespace().collect::<Vec<_>>() == ["/proc", "proc"])
        .count()
}

/// What a user sees of /proc around one inner process: proc mounts stacked
/// on /proc on the host (before and while it lives) and in its own table,
/// and the pids its /proc lists.
#[derive(Debug, serde::Serialize)]
pub struct ProcView {
    /// proc mounts stacked on the host's /proc before the inner process started.
    pub host_before: usize,
    /// The same count while it lives: unchanged if its mount did not leak.
    pub host_during: usize,
    /// proc mounts stacked on /proc in its own mount table.
    pub inner_stacked: usize,
    /// The pids its /proc lists, to show whose pid namespace that /proc belongs to.
    pub inner_pids: Vec<i64>,
}

/// Mount IDs cannot tell a leak (a copied or propagated mount gets a new
/// ID); paths, types and the pid view can.
pub fn judge_proc_view(v: &ProcView) -> Result<(), String> {
    if v.inner_stacked != v.host_before + 1 {
        return Err(format!(
            "inside, {} proc mounts are stacked on /proc; the host has {}: no new one on top",
            v.inner_stacked, v.host_before
        ));
    }
    if v.host_during != v.host_before {
        return Err(format!(
            "the host's /proc stack went from {} to {} proc mounts while the inner process lived",
            v.host_before, v.host_during
        ));
    }
    if v.inner_pids != [1] {
        return Err(format!(
            "the inner /proc lists {:?}, not the new pid ns's [1]: a copy of the host's",
            v.inner_pids
        ));
    }
    Ok(())
}

/// The host pid of the `sleep` under `parent` (itself, or its child once
/// unshare(1) forked), after its exec: --mount-proc is done by then.
fn inner_sleep(parent: i32) -> anyhow::Result<i32> {
    let comm = |p: i32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    let mut found = None;
    crate::process::wait_until(std::time::Duration::from_secs(5), || {
        let mut cands = vec![parent];
        cands.extend(crate::process::children_of(parent));
        found = cands.into_iter().find(|p| comm(*p).trim() == "sleep");
        found.is_some()
    });
    found.ok_or_else(|| anyhow::anyhow!("no `sleep` under {parent} after 5 s"))
}

fn proc_view_of(
    ctx: &mut Ctx,
    layer: &str,
    host_before: usize,
    pid: i32,
) -> anyhow::Result<ProcView> {
    let row_cmd = ["-n", "-r", "-o", "TARGET,FSTYPE"];
    let p = pid.to_string();
    let v = ProcView {
        host_before,
        host_during: stacked_proc(&run_ok(ctx.cmd("findmnt").args(row_cmd))?),
        inner_stacked: stacked_proc(&run_ok(
            ctx.cmd("findmnt").args(["--task", &p]).args(row_cmd),
        )?),
        inner_pids: numeric(
            &entries(&PathBuf::from(format!("/proc/{p}/root/proc")))?
                .into_iter()
                .collect::<Vec<_>>()
                .join(" "),
        ),
    };
    ctx.observe(layer, &v);
    Ok(v)
}

fn findmnt_sees_own_table(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let host_before = stacked_proc(&run_ok(ctx.cmd("findmnt").args([
        "-n",
        "-r",
        "-o",
        "TARGET,FSTYPE",
    ]))?);
    // The seed's command, kept alive so the host can be looked at meanwhile.
    let mut cli = crate::process::Spawned::start(ctx.cmd("unshare").args([
        "--fork",
        "--pid",
        "--mount-proc",
        "sleep",
        "60",
    ]))?;
    let cli_view = proc_view_of(ctx, "unshare_cli", host_before, inner_sleep(cli.pid())?)?;
    cli.kill();
    // Kernel layer: unshare(2) + mount(2) in the project's helper.
    let (mut k, pid) = crate::experiments::pid::start_inside(
        ctx,
        &["--ns", "pid,mnt", "--mount-proc"],
        &["sleep", "60"],
    )?;
    let kernel_view = proc_view_of(ctx, "helper_unshare", host_before, inner_sleep(pid)?)?;
    k.kill();
    for (layer, v) in [("unshare(1)", &cli_view), ("unshare(2)", &kernel_view)] {
        if let Err(why) = judge_proc_view(v) {
            return Err(crate::experiment::Problem::Fail(format!("{layer}: {why}")));
        }
    }
    Ok(())
}

fn mounted_at(p: &Path) -> anyhow::Result<bool> {
    Ok(mount_table(&host_mountinfo()?)
        .iter()
        .any(|(_, m, _)| m == p))
}

fn entries(p: &Path) -> anyhow::Result<BTreeSet<String>> {
    Ok(std::fs::read_dir(p)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

/// Takes down every mount stacked on `p`. Bounded: an unmount that keeps
/// reporting success (seen once: minutes at 100% CPU) must not spin forever;
/// whatever stays is the leak check's to report.
fn unmount_stack(p: &Path) {
    for _ in 0..64 {
        if umount2(p, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

/// CLI layer: `mount --bind /usr/bin T && ls T` in a private mount
/// namespace (the control: on the host); the entries listed.
fn bind_list_cli(ctx: &mut Ctx, v: Variant, t: &str) -> anyhow::Result<BTreeSet<String>> {
    let script = format!("mount --bind /usr/bin {t} && ls -1 -A {t}");
    let out = if v.isolated() {
        run_ok(ctx.cmd("unshare").args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]))?
    } else {
        run_ok(ctx.cmd("sh").args(["-c", &script]))?
    };
    Ok(out.lines().map(String::from).collect())
}

/// Kernel layer: mount(2) MS_BIND in the helper, in a new mount namespace
/// (the control: on the host); the entries listed.
fn bind_list_kernel(ctx: &mut Ctx, v: Variant, t: &str) -> anyhow::Result<BTreeSet<String>> {
    let exe = helper::helper_path();
    let mut k = ctx.helper();
    if v.isolated() {
        k.args(["unshare", "--ns", "mnt", "--"])
            .arg(&exe)
            .arg("helper");
    }
    Ok(run_ok(k.args(["bind-list", "/usr/bin", t]))?
        .lines()
        .map(String::from)
        .collect())
}

fn bind_mount_invisible(ctx: &mut Ctx, v: Variant) -> Outcome {
    let target = ctx.scratch()?.join("mnt");
    std::fs::create_dir_all(&target)?;
    let t = target.to_string_lossy().to_string();
    if !v.isolated() {
        // The control mounts on the host itself: take it down at teardown.
        let t2 = target.clone();
        ctx.defer("unmount the control's bind mount", move || {
            unmount_stack(&t2);
        });
    }
    let usr_bin = entries(Path::new("/usr/bin"))?;
    let inside_cli = bind_list_cli(ctx, v, &t)?;
    let inside_kernel = bind_list_kernel(ctx, v, &t)?;
    let host_entries = entries(&target)?.len();
    let host_mounted = mounted_at(&target)?;
    // How many files /usr/bin holds is the machine's (an initramfs has a
    // few dozen), not the kernel's: the kernel's fact is the check below.
    ctx.observe_userspace("usr_bin_entries", usr_bin.len());
    ctx.observe_userspace("inside_entries_cli", inside_cli.len());
    ctx.observe_userspace("inside_entries_kernel", inside_kernel.len());
    ctx.observe("host_entries", host_entries);
    ctx.observe("host_sees_mount", host_mounted);
    // The deciding check first: the control's mount is seen by the host.
    check!(!host_mounted, "the host's mount table has a mount on {t}");
    check_eq!(host_entries, 0, "entries of {t} seen from the host");
    check_eq!(
        inside_cli.len(),
        usr_bin.len(),
        "entries of the bind target inside (ls)"
    );
    check!(
        inside_cli == usr_bin,
        "the bind target inside does not list /usr/bin's entries"
    );
    check!(
        inside_kernel == usr_bin,
        "the bind target (mount(2) in the helper) does not list /usr/bin's entries"
    );
    Ok(())
}

fn propagation(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let shared = ctx.scratch()?.join("shared");
    let sub = shared.join("sub");
    std::fs::create_dir_all(&sub)?;
    // A shared mount of the suite's own, never a real host mount point.
    mount(
        Some(&shared),
        &shared,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    let s2 = shared.clone();
    ctx.defer("unmount the shared scratch mount", move || {
        unmount_stack(&s2);
    });
    mount(
        None::<&str>,
        &shared,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )?;
    let sub_s = sub.to_string_lossy().to_string();
    let mut seen = serde_json::Map::new();
    for mode in ["unchanged", "private"] {
        let r = run(ctx.cmd("unshare").args([
            "--mount",
            "--propagation",
            mode,
            "mount",
            "-t",
            "tmpfs",
            "isocheck-prop",
            &sub_s,
        ]))?;
        if !r.success() {
            broken!("mount in unshare --propagation {mode}: {}", r.stderr.trim());
        }
        let visible = mounted_at(&sub)?;
        seen.insert(mode.into(), json!(visible));
        unmount_stack(&sub);
    }
    ctx.observe("host_sees_mount", &seen);
    check_eq!(
        seen["unchanged"],
        json!(true),
        "a mount under a shared parent, unshare --propagation unchanged, seen on the host"
    );
    check_eq!(
        seen["private"],
        json!(false),
        "a mount under a shared parent, unshare --propagation private, seen on the host"
    );
    Ok(())
}

/// A busybox rootfs: /bin/busybox with its applet links, and /proc.
pub fn busybox_rootfs(dir: &Path) -> anyhow::Result<()> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(dir.join("proc"))?;
    let busybox =
        crate::host::which("busybox").ok_or_else(|| anyhow::anyhow!("busybox not found"))?;
    // Copied by a child process, so no descriptor writing it ever exists in
    // this multithreaded process: a fork on another thread would inherit it
    // until its exec, and exec'ing the copy meanwhile fails with ETXTBSY.
    run_ok(
        crate::process::command("cp")
            .arg(&busybox)
            .arg(bin.join("busybox")),
    )?;
    let list = run_ok(crate::process::command(&busybox).arg("--list"))?;
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    Ok(())
}

/// The busybox rootfs kept between runs, made on first use (renamed into
/// place whole, so a concurrent run sees all of it or none), keyed by the
/// busybox binary. Made fresh it was this section's slowest step: ~270
/// applet symlinks cost 0.4-0.6 s on this VM's ext4 under load. The shell
/// only reads it (its mounts live in its own mount namespace).
fn cached_rootfs() -> Option<PathBuf> {
    let busybox = crate::host::which("busybox")?.canonicalize().ok()?;
    let dir = crate::owner::cache_entry("rootfs", "", &[&busybox])?;
    if !dir.join("bin/busybox").is_file() {
        crate::owner::cache_fill(&dir, |tmp| busybox_rootfs(tmp).is_ok());
    }
    dir.join("bin/busybox").is_file().then_some(dir)
}

// `$(…)` forks: the /proc listing is read with builtins only.
fn rootfs_pivot(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let root = match cached_rootfs() {
        Some(root) => root,
        None => {
            let root = ctx.scratch()?.join("rootfs");
            busybox_rootfs(&root)?;
            root
        }
    };
    let out = run_ok(ctx.helper().args([
        "pivot-shell",
        &root.to_string_lossy(),
        "/bin/sh",
        "-c",
        "echo pid=$$; cd /proc; set -- [0-9]*; echo proc=$*; cd /; echo root=$(ls -A /)",
    ]))?;
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let expected: BTreeSet<String> = entries(&root)?;
    let seen: BTreeSet<String> = field("root").split_whitespace().map(String::from).collect();
    ctx.observe("pid", field("pid"));
    ctx.observe("root_entries", &seen);
    ctx.observe("proc_pids", field("proc"));
    check_eq!(field("pid"), "1", "the shell's pid after pivot_root");
    check_eq!(seen, expected, "entries of / after pivot_root");
    check_eq!(
        field("proc"),
        "1",
        "pids in the new /proc seen by the shell's builtins"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_view_judges_paths_types_and_pids() {
        let good = ProcView {
            host_before: 1,
            host_during: 1,
            inner_stacked: 2,
            inner_pids: vec![1],
        };
        assert!(judge_proc_view(&good).is_ok());
        // A copied host /proc: nothing new on top, the host's pids listed.
        let copied = ProcView {
            inner_stacked: 1,
            inner_pids: vec![1, 2, 97],
            ..good
        };
        assert!(judge_proc_view(&copied).is_err());
        // The new proc mount propagated to the host.
        let propagated = ProcView {
            host_during: 2,
            inner_pids: vec![1],
            ..copied
        };
        assert!(judge_proc_view(&ProcView {
            inner_stacked: 2,
            ..propagated
        })
        .is_err());
        assert_eq!(
            stacked_proc("/ ext4\n/proc proc\n/proc/sys/fs/binfmt_misc binfmt_misc\n/proc proc\n"),
            2
        );
    }

    #[test]
    fn mount_table_reads_ids_points_and_types() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  30 22 0:40 / /tmp/a\\040b rw - tmpfs none rw\n";
        let t = mount_table(mi);
        assert_eq!(t[0], (22, PathBuf::from("/proc"), "proc".to_string()));
        assert_eq!(t[1].1, PathBuf::from("/tmp/a b"));
        assert_eq!(proc_mount_id(&t), Some(22));
    }
}
