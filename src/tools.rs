//! The command-line tools the experiments run, with the Debian packages that
//! ship them: below both `host` (which finds them on PATH) and `needs`
//! (which lets an experiment require one).

use serde::Serialize;

/// A command-line tool an experiment runs, with the Debian package that ships it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Tool {
    Ip,
    Iptables,
    Ping,
    Unshare,
    Nsenter,
    Setpriv,
    Lsns,
    Findmnt,
    Mount,
    Ps,
    Ipcs,
    Hostname,
    Cgcreate,
    Cgexec,
    Cgdelete,
    Gcc,
    Busybox,
    Tar,
    Python3,
    Docker,
    QemuSystem,
}

impl Tool {
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
        Tool::Hostname,
        Tool::Cgcreate,
        Tool::Cgexec,
        Tool::Cgdelete,
        Tool::Gcc,
        Tool::Busybox,
        Tool::Tar,
        Tool::Python3,
        Tool::Docker,
        Tool::QemuSystem,
    ];

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
            Tool::Hostname => "hostname",
            Tool::Cgcreate => "cgcreate",
            Tool::Cgexec => "cgexec",
            Tool::Cgdelete => "cgdelete",
            Tool::Gcc => "gcc",
            Tool::Busybox => "busybox",
            Tool::Tar => "tar",
            Tool::Python3 => "python3",
            Tool::Docker => "docker",
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
            Tool::Ipcs => "util-linux",
            Tool::Hostname => "hostname",
            Tool::Cgcreate | Tool::Cgexec | Tool::Cgdelete => "cgroup-tools",
            Tool::Gcc => "gcc",
            Tool::Busybox => "busybox-static",
            Tool::Tar => "tar",
            Tool::Python3 => "python3",
            Tool::Docker => "docker.io",
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
            _ => &["--version"],
        }
    }
}
