//! Catalogue section 8: the known escape paths stay closed.
//!
//! Each row is a boundary that has been broken before (a CVE or a classic
//! container escape), asserted by behaviour with a control that crosses it
//! legitimately, so a kernel or runtime regression shows up as a failed row.
//!
//! Safety is the design constraint of every row: each attempt aims only at
//! objects the suite made for it (its own named cgroup v1 hierarchy, netns,
//! tmpfs, setuid copy, container). Mount work happens in private mount
//! namespaces held by a suite process (`unshare -m --propagation private`),
//! so the host's mount namespace never sees a mount of this section and the
//! kernel drops every one of them when the holder dies, whatever happens.
//! No row sets `notify_on_release` or creates a child cgroup, so no release
//! agent can ever run: even a `release_agent` write that unexpectedly
//! succeeds names `/bin/true`, is cleared at once, and is never triggered.

// The container rows need what every Docker row needs.
use super::docker::ENGINE;
use crate::experiment::{Ctx, Experiment};
use crate::helper::helper_path;
use crate::needs;
use crate::needs::{cmd, Need, ROOT, USERNS};
use crate::process::{run_ok, Spawned};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const UNPRIV_S: &str = "100000";

/// The rows that enter a user namespace with the seed's tools.
const USERNS_TOOLS: &[Need] = needs![ROOT, USERNS, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT];
/// Section 8's rows (escape paths), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("esc.release-agent-denied", release_agent_denied)
        .asserts("uid 0 of a new user+mnt+cgroup ns (mapped to 100000) cannot set a cgroup v1 release_agent: its v1 mount is refused or the write fails EPERM; the suite's own hierarchy's release_agent write fails EPERM (CVE-2022-0492)")
        .cve("CVE-2022-0492")
        .needs(needs![ROOT, crate::needs::kc::CGROUPS, USERNS, cmd::UNSHARE, cmd::MOUNT])
        .control("real root in the init user ns: the mount and the write succeed (then cleared, unmounted)"),
    Experiment::new("esc.abstract-socket-per-netns", abstract_socket_per_netns)
        .asserts("an abstract unix socket bound in one suite netns is not reachable from another: connect fails ECONNREFUSED")
        .cve("CVE-2020-15257")
        .needs(needs![ROOT, crate::needs::kc::NET_NS, crate::needs::kc::UNIX, cmd::IP])
        .control("the client in the server's netns: connects and reads the reply"),
    Experiment::new("esc.locked-mounts", locked_mounts)
        .asserts("after unshare -Urm, umount of a suite tmpfs covering a file fails EINVAL (MNT_LOCKED) and the file stays hidden")
        .needs(USERNS_TOOLS)
        .control("unshare -m without a user ns: the umount succeeds and the file shows"),
    Experiment::new("esc.userns-no-device-nodes", userns_no_device_nodes)
        .asserts("uid 0 of a new user ns (mapped to 100000) cannot mknod a char device (EPERM) in a suite tmpfs, nor mount proc without owning the pid ns")
        .needs(USERNS_TOOLS)
        .control("real root: mknod of the same device (1:3) succeeds"),
    Experiment::new("esc.setns-out-denied", setns_out_denied)
        .asserts("uid 0 of a new user ns (mapped to 100000) cannot setns() into a suite netns owned by the init user ns: EPERM")
        .anchor("LTP userns04")
        .needs(needs![ROOT, crate::needs::kc::NET_NS, USERNS, cmd::UNSHARE, cmd::NSENTER, cmd::IP])
        .control("real root: setns succeeds (in a child that exits at once)"),
    Experiment::new("esc.no-new-privs", no_new_privs)
        .asserts("with no_new_privs, exec of a suite setuid-root copy of cat keeps euid 100000 and its status shows NoNewPrivs: 1")
        .anchor("LTP prctl06")
        .needs(needs![ROOT, cmd::UNSHARE, cmd::NSENTER, cmd::SETPRIV])
        .control("without no_new_privs: euid 0"),
    Experiment::new("esc.docker-masked-paths", docker_masked_paths)
        .asserts("each existing path of the engine's MaskedPaths is a mount point reading empty, each ReadonlyPaths one is mounted ro, and writing /proc/sys/kernel/hostname fails 'Read-only file system'")
        .anchor("youki masked_paths").anchor("youki readonly_paths").anchor("runtime-tools linux_masked_paths").anchor("runtime-tools linux_readonly_paths")
        .needs(ENGINE)
        .control("--security-opt systempaths=unconfined: none of those mounts, the write succeeds (the container's own uts ns)"),
    Experiment::new("esc.docker-caps-dropped", docker_caps_dropped)
        .asserts("a default container's CapEff lacks SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_PTRACE; mount -t tmpfs and ip link add fail EPERM")
        .anchor("runtime-tools process_capabilities")
        .needs(ENGINE)
        .control("--cap-add SYS_ADMIN, seccomp and apparmor unconfined: the tmpfs mount succeeds"),
    Experiment::new("esc.cgroup-migrate-open-creds", cgroup_migrate_open_creds)
        .asserts("a suite child in group A opens B/cgroup.procs as euid 65534 (owner of A's and B's cgroup.procs, not of their parent's), then writes itself through it as euid 0: EACCES (the open-time credentials decide) and it stays in A (v2 where mounted, else v1 pids)")
        .anchor("LTP cgroup_core01").anchor("kselftest test_cgcore_lesser_euid_open").cve("CVE-2021-4197")
        .needs(needs![ROOT, crate::needs::kc::CGROUPS])
        .control("the same fd opened as euid 0: the write moves it to B"),
    Experiment::new("esc.mount-flags-locked", mount_flags_locked)
        .asserts("real root mounts a suite tmpfs ro,nosuid,nodev,noexec; as uid 0 of a new user+mnt ns a bind remount clearing any of them fails EPERM (mount(2) and unshare -Urm mount alike) and mountinfo keeps all four; a remount keeping them succeeds (CVE-2014-5206/5207)")
        .anchor("kselftest unprivileged-remount-test").cve("CVE-2014-5206").cve("CVE-2014-5207")
        .needs(needs![ROOT, USERNS, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::FINDMNT])
        .control("the same remounts in a new mount ns without a user ns: they succeed and the mount shows rw"),
    Experiment::new("esc.overlay-copyup-unmapped", overlay_copyup_unmapped)
        .asserts("in a user+mnt ns (0 → 100000) an overlay over a suite lower dir holding a 0666 file owned by an unmapped uid: opening it for write (copy-up) fails EOVERFLOW (helper and unshare -Urm alike) and the upper dirs stay empty, seen from the host; never a setuid bit (CVE-2023-0386)")
        .cve("CVE-2023-0386")
        .needs(needs![ROOT, USERNS, &[Need::Kernel(5, 11)], cmd::SETPRIV, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, crate::needs::kc::OVERLAY_FS])
        .control("the lower file owned by the mapped uid 100000: the copy-up succeeds and the upper file is 100000's on the host"),
    Experiment::new("esc.userns-mount-gate", userns_mount_gate)
        .asserts("uid 0 of a new user+mnt(+pid, net, ipc, cgroup) ns mapped to 100000 mounts tmpfs (the allowed set of tmpfs, ramfs, proc, sysfs, mqueue, devpts, cgroup2, overlay recorded per kernel) but not ext4 from a suite loop image: mount(2), mount(8) and fsopen+FSCONFIG_CMD_CREATE give EPERM (CVE-2022-0185's surface)")
        .anchor("LTP fsconfig03")
        .needs(needs![ROOT, USERNS, cmd::SETPRIV, cmd::UNSHARE, cmd::NSENTER, cmd::MOUNT, cmd::MKFS_EXT4, crate::needs::kc::BLK_DEV_LOOP, crate::needs::kc::EXT4_FS])
        .control("real root: the ext4 mount of the same image succeeds"),
    Experiment::new("esc.docker-no-leaked-fds", docker_no_leaked_fds)
        .asserts("a default container's init and a docker exec process hold no fd (classified by fdinfo mnt_id, never opened) nor cwd on a mount outside their mount ns; docker run -w /proc/self/fd/N (N 3..9) is refused with the engine's message or gets a cwd inside (CVE-2024-21626)")
        .anchor("youki fd_control").cve("CVE-2024-21626")
        .needs(needs![ENGINE, cmd::UNSHARE])
        .control("a suite process that opened a suite dir as fd 7 before entering its own mount ns: the same detector flags that fd"),
    Experiment::new("esc.docker-device-cgroup", docker_device_cgroup)
        .asserts("in a default container (CAP_MKNOD) mknod of a suite loop device's node succeeds but opening it fails EPERM (device cgroup / eBPF filter) and nothing of the image is read")
        .anchor("runtime-tools linux_cgroups_devices").anchor("youki devices")
        .needs(needs![ENGINE, crate::needs::kc::BLK_DEV_LOOP])
        .control("--device-cgroup-rule 'b 7:N r' for that device: the open succeeds and reads the suite image's first bytes"),
];

mod boundaries;
mod cgroup_creds;
mod containers;
mod device_cgroup;
mod leaked_fds;
mod mounts;
mod release_agent;

use boundaries::{
    abstract_socket_per_netns, locked_mounts, no_new_privs, setns_out_denied,
    userns_no_device_nodes,
};
use cgroup_creds::cgroup_migrate_open_creds;
use containers::{docker_caps_dropped, docker_masked_paths};
use device_cgroup::docker_device_cgroup;
use leaked_fds::docker_no_leaked_fds;
use mounts::{mount_flags_locked, overlay_copyup_unmapped, userns_mount_gate};
use release_agent::release_agent_denied;

pub use leaked_fds::{classify, fdinfo_mnt_id, mount_ids, Place};
pub use release_agent::has_cgroup_v1_fs;

// ---------------------------------------------------------------- shared

/// A scratch subdirectory every uid can traverse: the rows run commands as
/// the unprivileged uid (or as root of a user namespace mapped to it).
pub(crate) fn open_dir(ctx: &mut Ctx, name: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = ctx.scratch()?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    let d = root.join(name);
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    Ok(d)
}

/// A suite process holding a private mount namespace in which `setup` (a
/// shell script run as real root) made its mounts. Whatever the row does,
/// those mounts exist only there and die with the holder.
pub(crate) fn hold_mount_ns(ctx: &Ctx, setup: &str) -> anyhow::Result<Spawned> {
    let script = format!("set -e\n{setup}\necho ready\nexec sleep 600\n");
    let mut c = ctx.cmd("unshare");
    c.env("LC_ALL", "C")
        .args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let mut s = Spawned::start(&mut c)?;
    let l = s.read_line()?;
    if l != "ready" {
        anyhow::bail!("the mount-namespace holder printed {l:?}, not ready");
    }
    Ok(s)
}

/// `nsenter -t HOLDER -m ARGS…` as a tagged command.
pub(crate) fn in_holder(ctx: &Ctx, holder: &Spawned) -> Command {
    let mut c = ctx.cmd("nsenter");
    c.env("LC_ALL", "C")
        .args(["-t", &holder.pid().to_string(), "-m"]);
    c
}

/// `nsenter -t HOLDER -m isocheck helper [unshare NS… -- isocheck helper] OP
/// ARGS…`: a helper op in the holder's mount ns, inside new namespaces when
/// `ns` is given; its JSON line.
pub(crate) fn op_in_holder<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    holder: &Spawned,
    ns: Option<&[&str]>,
    op: &[&str],
) -> anyhow::Result<T> {
    let exe = helper_path();
    let mut c = in_holder(ctx, holder);
    c.arg(&exe).arg("helper");
    if let Some(ns) = ns {
        c.arg("unshare").args(ns).arg("--").arg(&exe).arg("helper");
    }
    last_json(&run_ok(c.args(op))?)
}

/// `key=value` lines of a shell probe.
pub(crate) fn kv_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The last line of a helper op's stdout as JSON (its reply).
pub(crate) fn last_json<T: serde::de::DeserializeOwned>(out: &str) -> anyhow::Result<T> {
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| anyhow::anyhow!("helper output {out:?}: {e}"))
}

fn is_read_only(opts: &str) -> bool {
    opts.split(',').any(|o| o == "ro")
}

#[cfg(test)]
mod tests {
    use super::containers::{cap_eff, CAPS};
    use super::*;
    use crate::helper::escape::mount_entry;
    use std::path::Path;

    #[test]
    fn mount_entry_reads_the_last_mount_on_a_path() {
        let mi = "22 1 0:5 / /proc rw,nosuid - proc proc rw\n\
                  30 22 0:5 /sys /proc/sys ro,nosuid - proc proc rw\n\
                  31 22 0:6 /null /proc/kcore rw,nosuid - devtmpfs udev rw,mode=755\n";
        let (t, o, _) = mount_entry(mi, Path::new("/proc/sys")).unwrap();
        assert_eq!((t.as_str(), is_read_only(&o)), ("proc", true));
        assert!(mount_entry(mi, Path::new("/proc/keys")).is_none());
        assert!(!is_read_only(
            &mount_entry(mi, Path::new("/proc/kcore")).unwrap().1
        ));
    }

    #[test]
    fn cap_eff_parses_docker_default() {
        let eff = cap_eff("CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n").unwrap();
        for (_, bit) in CAPS {
            assert_eq!(eff & (1 << bit), 0);
        }
        assert_ne!(eff & (1 << 0), 0, "CAP_CHOWN is in Docker's default set");
    }

    #[test]
    fn cgroup_v1_fs_is_found_by_its_exact_name() {
        assert!(has_cgroup_v1_fs(
            "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\n"
        ));
        assert!(!has_cgroup_v1_fs("nodev\tsysfs\nnodev\tcgroup2\n"));
    }

    #[test]
    fn kv_lines_splits_at_the_first_equals() {
        let m = kv_lines("named_mount=permission denied.\nown_after=\nx=a=b\n");
        assert_eq!(m["named_mount"], "permission denied.");
        assert_eq!(m["own_after"], "");
        assert_eq!(m["x"], "a=b");
    }
}
