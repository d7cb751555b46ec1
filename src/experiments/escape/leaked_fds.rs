//! esc.docker-no-leaked-fds (CVE-2024-21626, runc GHSA-xr7r-f8xq-vfvv):
//! runc leaked an fd of the host's /sys/fs/cgroup into the container, and
//! `-w /proc/self/fd/N` made it the new process's cwd, outside the rootfs.
//!
//! The detector: a process's fd (or cwd) is outside its container when the
//! mount that holds it is not a mount of the process's own mount namespace
//! (its `fdinfo` `mnt_id`, or statx's for the cwd, absent from its
//! `mountinfo`). Targets are only read (`readlink`, `fdinfo`), never opened.

use crate::docker::{self as dk, Launch};
use crate::experiment::{read, Ctx, Outcome, Variant};
use crate::namespaces;
use crate::process::{wait_until, Spawned};
use crate::{broken, check};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Where an fd or a cwd points, as the detector sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A pipe, socket, anon inode, namespace or memfd: no path at all.
    Kernel,
    /// A path on a mount of the process's own mount namespace.
    Inside,
    /// A path on a mount that namespace does not have: the host's.
    Outside,
    /// The mount could not be told (the fd went away meanwhile).
    Unknown,
}

/// The mount ids of a mountinfo text.
pub fn mount_ids(mountinfo: &str) -> BTreeSet<u64> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

/// `mnt_id:` of an fdinfo text.
pub fn fdinfo_mnt_id(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Classifies one link target (`readlink` of /proc/PID/fd/N or cwd).
pub fn classify(target: &str, mnt_id: Option<u64>, own: &BTreeSet<u64>) -> Place {
    if !target.starts_with('/') || target.starts_with("/memfd:") {
        return Place::Kernel;
    }
    match mnt_id {
        Some(m) if own.contains(&m) => Place::Inside,
        Some(_) => Place::Outside,
        None => Place::Unknown,
    }
}

/// What the detector found for one process: each fd and the cwd.
#[derive(Debug, Default, Serialize)]
pub struct Scan {
    /// fd number -> (target, place).
    pub fds: BTreeMap<u32, (String, Place)>,
    /// The cwd's target and place.
    pub cwd: (String, Option<Place>),
}

impl Scan {
    /// The fds and cwd the detector flags: on a mount outside the process's namespace.
    pub fn flagged(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .fds
            .iter()
            .filter(|(_, (_, p))| *p == Place::Outside)
            .map(|(n, (t, _))| format!("fd {n} -> {t}"))
            .collect();
        if self.cwd.1 != Some(Place::Inside) {
            v.push(format!("cwd {} ({:?})", self.cwd.0, self.cwd.1));
        }
        v
    }

    /// Fd numbers by place, for the report (targets hold run-varying inodes).
    fn places(&self) -> BTreeMap<u32, Place> {
        self.fds.iter().map(|(n, (_, p))| (*n, p.clone())).collect()
    }
}

/// The mount id of the object a path names, by statx (the magic link of
/// /proc/PID/cwd resolves to the directory; nothing is opened).
fn statx_mnt_id(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string and a zeroed statx buffer of the right type.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut st) };
    (r == 0 && st.stx_mask & libc::STATX_MNT_ID != 0).then_some(st.stx_mnt_id)
}

/// Runs the detector on a host process.
pub fn scan(pid: i32) -> anyhow::Result<Scan> {
    let own = mount_ids(&read(format!("/proc/{pid}/mountinfo"))?);
    let mut s = Scan::default();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        let Some(n) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // An fd closed between the listing and here is simply not there.
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.display().to_string();
        let mnt = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{n}"))
            .ok()
            .and_then(|t| fdinfo_mnt_id(&t));
        let place = classify(&target, mnt, &own);
        s.fds.insert(n, (target, place));
    }
    let cwd = Path::new("/proc").join(pid.to_string()).join("cwd");
    let target = std::fs::read_link(&cwd)?.display().to_string();
    let place = classify(&target, statx_mnt_id(&cwd), &own);
    s.cwd = (target, Some(place));
    Ok(s)
}

pub(super) fn docker_no_leaked_fds(ctx: &mut Ctx, v: Variant) -> Outcome {
    let scans = if v.isolated() {
        container_scans(ctx)?
    } else {
        vec![("suite_process".to_string(), suite_process_scan(ctx)?)]
    };
    let mut flagged = BTreeMap::new();
    for (who, s) in &scans {
        if v.isolated() {
            ctx.observe(&format!("{who}_fds"), s.places());
        } else {
            // The suite process inherits the runner's own fds (a terminal,
            // a job's pipes): they differ by where the suite runs.
            ctx.measure(&format!("{who}_fds"), s.places());
        }
        ctx.observe(&format!("{who}_cwd"), &s.cwd.1);
        ctx.measure(&format!("{who}_targets"), s);
        flagged.insert(who.clone(), s.flagged());
    }
    // Whether each process is clean is the fact; what was flagged names the
    // run's scratch dir and the runner's own stdio, so it is measured.
    let clean: BTreeMap<&String, bool> = flagged.iter().map(|(w, f)| (w, f.is_empty())).collect();
    ctx.observe("clean", &clean);
    ctx.measure("flagged", &flagged);
    for (who, f) in &flagged {
        check!(
            f.is_empty(),
            "{who} holds fds or a cwd outside its mount namespace: {f:?}"
        );
    }
    if v.isolated() {
        workdir_fds(ctx)?;
    }
    Ok(())
}

/// The init of a default container and a `docker exec` process in it.
fn container_scans(ctx: &mut Ctx) -> anyhow::Result<Vec<(String, Scan)>> {
    let c = dk::run_shell(ctx, &["--network", "none"])?;
    let init = dk::init_pid(ctx, &c)?;
    // `-i`: the exec's stdin is the shim's pipe. Without it the shim hands
    // the process the host's /dev/null (measured), which the detector
    // rightly calls a host fd, though one that reaches nothing.
    let mut ex = Spawned::start(dk::docker(ctx).args(["exec", "-i", &c.id, "sleep", "60"]))?;
    let pidns = namespaces::inode(&init.to_string(), "pid")?;
    // A TCG guest beside other guests took longer than 20 s (measured).
    let bound = Duration::from_secs(if crate::process::in_qemu_guest() {
        120
    } else {
        20
    });
    let mut exec_pid = None;
    let mut client_ended = None;
    wait_until(bound, || {
        exec_pid = namespaces::pids_in_ns("pid", pidns).into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        client_ended = ex.child.try_wait().ok().flatten();
        exec_pid.is_some() || client_ended.is_some()
    });
    let Some(exec_pid) = exec_pid else {
        anyhow::bail!(
            "the exec'd sleep never appeared in the container's pid ns within {bound:?} (docker exec: {client_ended:?})"
        );
    };
    let scans = vec![
        ("init".to_string(), scan(init)?),
        ("exec".to_string(), scan(exec_pid)?),
    ];
    drop(ex);
    Ok(scans)
}

/// The control: a suite process that opened a suite directory as fd 7 and
/// then entered a mount namespace of its own, as runc's leak carried the
/// host's fd into the container's. (Its cwd moves onto the new namespace's
/// copy of the mount, so only the fd is flagged.)
fn suite_process_scan(ctx: &mut Ctx) -> anyhow::Result<Scan> {
    let dir = ctx.scratch()?;
    let script = format!(
        "exec 7< '{}'; exec unshare -m --propagation private sh -c 'echo ready; exec sleep 30'",
        dir.display()
    );
    // The script's own `unshare -m` mounts: it starts in a proven private
    // mount namespace, so a faked unshare(2) cannot make the host's `/` private.
    let mut sh = ctx.cmd("sh");
    crate::namespaces::private_mounts(&mut sh);
    let mut p = Spawned::start(sh.current_dir(&dir).args(["-c", &script]))?;
    let line = p.read_line()?;
    if line != "ready" {
        anyhow::bail!("the suite process said {line:?}");
    }
    if namespaces::inode(&p.pid().to_string(), "mnt")? == namespaces::inode("self", "mnt")? {
        anyhow::bail!("the suite process is still in the run's mount namespace");
    }
    let s = scan(p.pid())?;
    drop(p);
    Ok(s)
}

/// `docker run -w /proc/self/fd/N` for N in 3..10: refused with the
/// engine's message naming that path, or the started process's cwd is on a
/// mount of its own namespace (the probe opens `.` as fd 9 and prints its
/// `mnt_id` with the container's mountinfo).
fn workdir_fds(ctx: &mut Ctx) -> Outcome {
    let probe = "exec 9<.; grep mnt_id: /proc/self/fdinfo/9; cat /proc/self/mountinfo";
    let outcomes: Vec<(u32, anyhow::Result<Launch>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (3..10u32)
            .map(|n| {
                let mut cx = ctx.fork();
                let h = s.spawn(move || {
                    let w = format!("/proc/self/fd/{n}");
                    let opts = ["--network", "none", "-w", &w];
                    dk::run_fg_outcome(&mut cx, "wd", &opts, &["sh", "-c", probe])
                });
                (n, h)
            })
            .collect();
        hs.into_iter()
            .map(|(n, h)| (n, h.join().expect("workdir probe thread panicked")))
            .collect()
    });
    let mut seen = BTreeMap::new();
    let mut said = BTreeMap::new();
    let mut escaped = Vec::new();
    for (n, o) in outcomes {
        let path = format!("/proc/self/fd/{n}");
        let verdict = match o? {
            Launch::NotCreated { message, .. } | Launch::NotStarted(message) => {
                if !message.contains(&path) && !message.contains("breakout") {
                    broken!("-w {path} was refused for another reason: {message}");
                }
                said.insert(n, message);
                "refused".to_string()
            }
            Launch::Started(_, r) => {
                let place = classify("/", fdinfo_mnt_id(&r.stdout), &mount_ids(&r.stdout));
                if place != Place::Inside {
                    escaped.push(format!("{path}: {place:?}"));
                }
                format!("started, cwd {place:?}")
            }
        };
        seen.insert(n, verdict);
    }
    ctx.observe("workdir_proc_self_fd", &seen);
    // runc's words depend on which fds its init had open at that moment.
    ctx.measure("workdir_refusals", &said);
    check!(
        escaped.is_empty(),
        "-w /proc/self/fd/N started with a cwd outside the container: {escaped:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Recorded on this host: a container's mountinfo (head) and fdinfos.
    const MOUNTINFO: &str = "401 299 0:58 / / ro,relatime master:11 - overlay overlay rw\n\
                             402 401 0:60 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
                             410 402 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw\n";
    const FDINFO_HOST_DIR: &str = "pos:\t0\nflags:\t0100000\nmnt_id:\t27\nino:\t10051858\n";
    const FDINFO_OWN: &str = "pos:\t0\nflags:\t02\nmnt_id:\t402\n";

    #[rstest]
    #[case::pipe("pipe:[470142]", None, Place::Kernel)]
    #[case::socket("socket:[1234]", Some(9), Place::Kernel)]
    #[case::anon("anon_inode:[eventpoll]", Some(15), Place::Kernel)]
    #[case::memfd("/memfd:runc_cloned:/proc/self/exe (deleted)", Some(5), Place::Kernel)]
    #[case::own_mount("/proc/1/status", fdinfo_mnt_id(FDINFO_OWN), Place::Inside)]
    #[case::host_dir("/sys/fs/cgroup", fdinfo_mnt_id(FDINFO_HOST_DIR), Place::Outside)]
    #[case::unknown("/tmp/x", None, Place::Unknown)]
    fn classifies_fd_targets_by_their_mount(
        #[case] target: &str,
        #[case] mnt: Option<u64>,
        #[case] want: Place,
    ) {
        assert_eq!(classify(target, mnt, &mount_ids(MOUNTINFO)), want);
    }

    #[test]
    fn reads_mount_ids_and_fdinfo() {
        assert_eq!(
            mount_ids(MOUNTINFO).into_iter().collect::<Vec<_>>(),
            vec![401, 402, 410]
        );
        assert_eq!(fdinfo_mnt_id(FDINFO_HOST_DIR), Some(27));
        assert_eq!(fdinfo_mnt_id("pos:\t0\n"), None);
    }

    #[test]
    fn a_cwd_that_is_not_inside_is_flagged() {
        let s = Scan {
            fds: BTreeMap::from([(7, ("/sys/fs/cgroup".to_string(), Place::Outside))]),
            cwd: ("/".to_string(), Some(Place::Unknown)),
        };
        assert_eq!(s.flagged().len(), 2);
    }
}
