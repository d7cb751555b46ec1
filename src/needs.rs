//! The closed vocabulary of what an experiment may require of its host.
//!
//! Like runc's `requires` and LTP's `needs_*` fields: an experiment declares
//! what it needs, the harness decides whether the host meets it. The variants
//! are an enum so that an unknown need is a compile error, and `from_name`
//! rejects unknown names in text form (the CLI and tests), so a typo can never
//! silently count as "met".

use crate::host::HostFacts;
use serde::Serialize;
use std::fmt;

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

/// A cgroup controller the experiments use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// One requirement. `Display` gives the stable text form used in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Need {
    /// Effective uid 0 (the experiments create namespaces, mounts, cgroups).
    Root,
    /// A command on PATH.
    Tool(Tool),
    /// The controller is available in either cgroup version.
    Cgroup(Controller),
    /// The controller is mounted as a cgroup v1 hierarchy.
    CgroupV1(Controller),
    /// Kernel version at least (major, minor).
    Kernel(u32, u32),
    /// Creating a user namespace works on this host (sysctls, AppArmor).
    UserNamespaces,
    /// The libseccomp headers and library, to build the seed's C program.
    LibseccompDev,
    /// A Docker engine answers and the project's `docker` feature is on.
    Docker,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Root => write!(f, "root"),
            Need::Tool(t) => write!(f, "cmd:{}", t.command()),
            Need::Cgroup(c) => write!(f, "cgroup:{}", c.name()),
            Need::CgroupV1(c) => write!(f, "cgroup-v1:{}", c.name()),
            Need::Kernel(a, b) => write!(f, "kernel>={a}.{b}"),
            Need::UserNamespaces => write!(f, "userns"),
            Need::LibseccompDev => write!(f, "libseccomp-dev"),
            Need::Docker => write!(f, "docker"),
        }
    }
}

impl Need {
    /// Parses the text form. Unknown names are an error, never "met".
    pub fn from_name(s: &str) -> Result<Need, String> {
        let ctrl = |n: &str| match n {
            "memory" => Ok(Controller::Memory),
            "pids" => Ok(Controller::Pids),
            "cpu" => Ok(Controller::Cpu),
            _ => Err(format!("unknown cgroup controller {n:?} in need {s:?}")),
        };
        match s {
            "root" => return Ok(Need::Root),
            "userns" => return Ok(Need::UserNamespaces),
            "libseccomp-dev" => return Ok(Need::LibseccompDev),
            "docker" => return Ok(Need::Docker),
            _ => {}
        }
        if let Some(c) = s.strip_prefix("cmd:") {
            return Tool::ALL
                .iter()
                .find(|t| t.command() == c)
                .map(|t| Need::Tool(*t))
                .ok_or_else(|| format!("unknown tool {c:?} in need {s:?}"));
        }
        if let Some(c) = s.strip_prefix("cgroup-v1:") {
            return ctrl(c).map(Need::CgroupV1);
        }
        if let Some(c) = s.strip_prefix("cgroup:") {
            return ctrl(c).map(Need::Cgroup);
        }
        if let Some(v) = s.strip_prefix("kernel>=") {
            let (a, b) = v
                .split_once('.')
                .ok_or_else(|| format!("kernel need {s:?} must be MAJOR.MINOR"))?;
            let a = a
                .parse()
                .map_err(|_| format!("bad kernel major in {s:?}"))?;
            let b = b
                .parse()
                .map_err(|_| format!("bad kernel minor in {s:?}"))?;
            return Ok(Need::Kernel(a, b));
        }
        Err(format!("unknown need {s:?}"))
    }

    /// `None` when the host meets the need, otherwise the reason it does not,
    /// phrased so that it names the fix.
    pub fn unmet(&self, host: &HostFacts) -> Option<String> {
        match self {
            Need::Root => (!host.is_root)
                .then(|| "needs root: run as root or through sudo (ci/isocheck and ci/test do; README, Quick start)".to_string()),
            Need::Tool(t) => (!host.has_tool(*t)).then(|| {
                let fix = if crate::host::in_qemu_guest() {
                    "on the host that runs ci/kernel-run.sh: it carries the host's tools into the guest"
                } else {
                    "(ci/install-host-deps.sh does)"
                };
                format!(
                    "needs `{}` on PATH: install package {} {fix}",
                    t.command(),
                    t.package()
                )
            }),
            Need::Cgroup(c) => (!host.cgroup.has(c.name())).then(|| {
                format!(
                    "needs the cgroup {} controller (layout {}: v1 {:?}, v2 {:?})",
                    c.name(),
                    host.cgroup.layout,
                    host.cgroup.v1,
                    host.cgroup.v2
                )
            }),
            Need::CgroupV1(c) => (!host.cgroup.v1.iter().any(|x| x == c.name())).then(|| {
                format!(
                    "needs the {} controller on cgroup v1 (this host: layout {}, v1 {:?})",
                    c.name(),
                    host.cgroup.layout,
                    host.cgroup.v1
                )
            }),
            Need::Kernel(a, b) => (host.kernel_version < (*a, *b, 0))
                .then(|| format!("needs kernel >= {a}.{b} (this host runs {})", host.kernel)),
            Need::UserNamespaces => host.userns_blocked.clone(),
            Need::LibseccompDev => (!host.libseccomp_dev).then(|| {
                "needs the libseccomp headers (seccomp.h): install libseccomp-dev".to_string()
            }),
            Need::Docker => host.docker_unmet(),
        }
    }
}
