//! The command-line tools the experiments run, with the Debian packages that
//! ship them: below both `host` (which finds them on PATH) and `needs`
//! (which lets an experiment require one).

use serde::Serialize;

/// A command-line tool an experiment runs, with the Debian package that ships it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Tool {
    /// `ip` (iproute2): the net rows' namespaces, veths, addresses and routes.
    Ip,
    /// `iptables`: the net rows' NAT and forwarding rules.
    Iptables,
    /// `ping` (iputils): reachability across namespaces, with the TTL that shows a hop.
    Ping,
    /// `unshare` (util-linux): the seed's way of entering new namespaces.
    Unshare,
    /// `nsenter` (util-linux): joining a namespace another process holds.
    Nsenter,
    /// `setpriv` (util-linux): dropping capabilities for the escape rows.
    Setpriv,
    /// `lsns` (util-linux): the seed's namespace table.
    Lsns,
    /// `findmnt` (util-linux): the mount rows' view of a mount table.
    Findmnt,
    /// `mount` (util-linux): the seed's mount steps.
    Mount,
    /// `ps` (procps): what a PID namespace lets a process see.
    Ps,
    /// `ipcs` (util-linux): SysV IPC objects visible in an ipc namespace.
    Ipcs,
    /// `ipcmk` (util-linux): makes SysV IPC objects, the ipc rows' CLI layer.
    Ipcmk,
    /// `hostname`: the UTS namespace rows.
    Hostname,
    /// `cgcreate` (cgroup-tools): the seed's way of making a group.
    Cgcreate,
    /// `cgexec` (cgroup-tools): the seed's way of running in a group.
    Cgexec,
    /// `cgdelete` (cgroup-tools): the seed's way of removing a group.
    Cgdelete,
    /// `gcc`: builds the seed's seccomp.c (with libseccomp-dev).
    Gcc,
    /// `busybox` (static): the tiny root filesystem of the mnt and Docker rows.
    Busybox,
    /// `tar`: packs that root filesystem into a Docker image.
    Tar,
    /// `python3`: run by the kernel scripts only, never by an experiment.
    Python3,
    /// `docker`: the engine's CLI for section 7.
    Docker,
    /// `setcap` (libcap2-bin): writes a file capability (user.file-caps-namespaced).
    Setcap,
    /// `getcap` (libcap2-bin): reads a file capability back.
    Getcap,
    /// `mkfs.ext4` (e2fsprogs): the filesystem of esc.userns-mount-gate's loop image.
    MkfsExt4,
    /// `qemu-system-x86_64`: boots the kernels of ci/kernel-run.sh; no experiment runs it.
    QemuSystem,
}

impl Tool {
    /// Every tool, so `host` can look each up on PATH once and `doctor` can list them.
    pub const ALL: &'static [Tool] = &[
        Tool::Ip,
        Tool::Iptables,
        Tool::Ping,
        Tool::Unshare,
        Tool::Nsenter,
        Tool::Setpriv,
        Tool::Lsns,
        Tool::Findmnt,
        Tool::Mount,
        Tool::Ps,
        Tool::Ipcs,
        Tool::Ipcmk,
        Tool::Hostname,
        Tool::Cgcreate,
        Tool::Cgexec,
        Tool::Cgdelete,
        Tool::Gcc,
        Tool::Busybox,
        Tool::Tar,
        Tool::Python3,
        Tool::Docker,
        Tool::Setcap,
        Tool::Getcap,
        Tool::MkfsExt4,
        Tool::QemuSystem,
    ];

    /// The executable's name as looked up on PATH (and run).
    pub fn command(self) -> &'static str {
        match self {
            Tool::Ip => "ip",
            Tool::Iptables => "iptables",
            Tool::Ping => "ping",
            Tool::Unshare => "unshare",
            Tool::Nsenter => "nsenter",
            Tool::Setpriv => "setpriv",
            Tool::Lsns => "lsns",
            Tool::Findmnt => "findmnt",
            Tool::Mount => "mount",
            Tool::Ps => "ps",
            Tool::Ipcs => "ipcs",
            Tool::Ipcmk => "ipcmk",
            Tool::Hostname => "hostname",
            Tool::Cgcreate => "cgcreate",
            Tool::Cgexec => "cgexec",
            Tool::Cgdelete => "cgdelete",
            Tool::Gcc => "gcc",
            Tool::Busybox => "busybox",
            Tool::Tar => "tar",
            Tool::Python3 => "python3",
            Tool::Docker => "docker",
            Tool::Setcap => "setcap",
            Tool::Getcap => "getcap",
            Tool::MkfsExt4 => "mkfs.ext4",
            Tool::QemuSystem => "qemu-system-x86_64",
        }
    }

    /// The Debian/Ubuntu package that provides the command.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Ip => "iproute2",
            Tool::Iptables => "iptables",
            Tool::Ping => "iputils-ping",
            Tool::Unshare
            | Tool::Nsenter
            | Tool::Setpriv
            | Tool::Lsns
            | Tool::Findmnt
            | Tool::Mount => "util-linux",
            Tool::Ps => "procps",
            Tool::Ipcs | Tool::Ipcmk => "util-linux",
            Tool::Hostname => "hostname",
            Tool::Cgcreate | Tool::Cgexec | Tool::Cgdelete => "cgroup-tools",
            Tool::Gcc => "gcc",
            Tool::Busybox => "busybox-static",
            Tool::Tar => "tar",
            Tool::Python3 => "python3",
            Tool::Docker => "docker.io",
            Tool::Setcap | Tool::Getcap => "libcap2-bin",
            Tool::MkfsExt4 => "e2fsprogs",
            Tool::QemuSystem => "qemu-system-x86",
        }
    }

    /// A tool only the kernel scripts (ci/kernel-run.sh) run, never an
    /// experiment: `doctor` reports its version, a run's report does not
    /// (python3's pyenv shim alone kept a run's end waiting ~0.4 s).
    pub fn for_kernel_scripts_only(self) -> bool {
        matches!(self, Tool::Python3 | Tool::QemuSystem)
    }

    /// The flag that makes the tool print its version, for `doctor` and the report.
    pub fn version_args(self) -> &'static [&'static str] {
        match self {
            Tool::Ip => &["-V"],
            Tool::Ping => &["-V"],
            Tool::Busybox => &[],
            Tool::Hostname => &["-V"],
            Tool::Cgcreate | Tool::Cgexec | Tool::Cgdelete => &["-h"],
            // libcap's tools have no version flag; -h prints their usage.
            Tool::Setcap | Tool::Getcap => &["-h"],
            Tool::MkfsExt4 => &["-V"],
            _ => &["--version"],
        }
    }
}
