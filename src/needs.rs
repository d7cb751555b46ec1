//! The closed vocabulary of what an experiment may require of its host.
//!
//! Like runc's `requires` and LTP's `needs_*` fields: an experiment declares
//! what it needs, the harness decides whether the host meets it. The variants
//! are an enum so that an unknown need is a compile error, and `from_name`
//! rejects unknown names in text form (the CLI and tests), so a typo can never
//! silently count as "met".

use crate::host::HostFacts;
pub use crate::tools::Tool;
use serde::Serialize;
use std::fmt;

/// Joins groups of needs into one list at compile time, in order: an
/// experiment writes `needs![ROOT, cmd::UNSHARE, cmd::PS]` from shared
/// building blocks instead of repeating a list. Usable in a `static` or
/// `const`; any element that is not a `&[Need]` is a compile error.
#[macro_export]
macro_rules! needs {
    ($($group:expr),* $(,)?) => {{
        const GROUPS: &[&[$crate::needs::Need]] = &[$($group),*];
        const JOINED: [$crate::needs::Need; $crate::needs::joined_len(GROUPS)] =
            $crate::needs::join(GROUPS);
        &JOINED
    }};
}

/// How many needs `groups` hold together (the length `needs!` joins to).
pub const fn joined_len(groups: &[&[Need]]) -> usize {
    let (mut n, mut g) = (0, 0);
    while g < groups.len() {
        n += groups[g].len();
        g += 1;
    }
    n
}

/// The groups' needs one after the other (`needs!`; N = `joined_len`).
pub const fn join<const N: usize>(groups: &[&[Need]]) -> [Need; N] {
    let mut out = [Need::Root; N];
    let (mut k, mut g) = (0, 0);
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            out[k] = groups[g][i];
            (k, i) = (k + 1, i + 1);
        }
        g += 1;
    }
    assert!(k == N, "needs!: the joined length differs from N");
    out
}

/// Building block: effective uid 0.
pub const ROOT: &[Need] = &[Need::Root];
/// Building block: user namespaces can be created. The kernel option
/// comes first: on a kernel built without it, the row says "not
/// configured" rather than the probe's "creating a user namespace fails".
pub const USERNS: &[Need] = &[Need::Kconfig("CONFIG_USER_NS"), Need::UserNamespaces];

/// One-option building blocks for `needs!`: `kc::VETH` is
/// `kconfig:CONFIG_VETH`. Every option a row names here is also in
/// ci/kernel/isocheck.config (`isocheck list --kconfig`).
pub mod kc {
    use super::Need;
    macro_rules! one_option {
        ($($name:ident),* $(,)?) => {
            $(#[doc = concat!("Building block: `CONFIG_", stringify!($name), "`.")]
            pub const $name: &[Need] = &[Need::Kconfig(concat!("CONFIG_", stringify!($name)))];)*
        };
    }
    one_option!(
        NAMESPACES,
        PID_NS,
        NET_NS,
        UTS_NS,
        IPC_NS,
        USER_NS,
        TIME_NS,
        SYSVIPC,
        CGROUPS,
        MEMCG,
        CGROUP_PIDS,
        CFS_BANDWIDTH,
        SECCOMP_FILTER,
        VETH,
        BRIDGE,
        NF_NAT,
        NETFILTER_XT_TARGET_MASQUERADE,
        OVERLAY_FS,
        UNIX,
        CPUSETS,
        BLK_DEV_LOOP,
        EXT4_FS,
        POSIX_MQUEUE,
    );
}

/// One-tool building blocks for `needs!`, one per `Tool`.
pub mod cmd {
    use super::{Need, Tool};
    macro_rules! one_tool {
        ($($name:ident = $tool:ident),* $(,)?) => {
            $(#[doc = concat!("Building block: the `", stringify!($tool), "` command.")]
            pub const $name: &[Need] = &[Need::Tool(Tool::$tool)];)*
        };
    }
    one_tool!(
        IP = Ip,
        IPTABLES = Iptables,
        PING = Ping,
        UNSHARE = Unshare,
        NSENTER = Nsenter,
        SETPRIV = Setpriv,
        LSNS = Lsns,
        FINDMNT = Findmnt,
        MOUNT = Mount,
        PS = Ps,
        IPCS = Ipcs,
        IPCMK = Ipcmk,
        HOSTNAME = Hostname,
        CGCREATE = Cgcreate,
        CGEXEC = Cgexec,
        CGDELETE = Cgdelete,
        GCC = Gcc,
        BUSYBOX = Busybox,
        TAR = Tar,
        PYTHON3 = Python3,
        DOCKER = Docker,
        SETCAP = Setcap,
        GETCAP = Getcap,
        MKFS_EXT4 = MkfsExt4,
        QEMU_SYSTEM = QemuSystem,
    );
}

/// A cgroup controller the experiments use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Controller {
    /// `memory`: the limit and OOM rows.
    Memory,
    /// `pids`: the fork-limit rows.
    Pids,
    /// `cpu`: the quota and weight rows.
    Cpu,
    /// `freezer`: a v1 hierarchy; on v2 freezing is a core file of every
    /// group (`cgroup.freeze`), so any cgroup2 mount provides it.
    Freezer,
    /// `cpuset`: the CPU-affinity row.
    Cpuset,
}

impl Controller {
    /// The controller's name as cgroup files, mounts and `cgcreate -g` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Freezer => "freezer",
            Controller::Cpuset => "cpuset",
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
    /// The controller is enabled at the root of the cgroup v2 hierarchy.
    CgroupV2Ctrl(Controller),
    /// A cgroup2 hierarchy is mounted (its core files: `cgroup.kill`,
    /// `cgroup.freeze`, `cgroup.events`), whatever controllers it has.
    CgroupV2,
    /// Kernel version at least (major, minor).
    Kernel(u32, u32),
    /// Creating a user namespace works on this host (sysctls, AppArmor).
    UserNamespaces,
    /// The libseccomp headers and library, to build the seed's C program.
    LibseccompDev,
    /// A Docker engine answers.
    Docker,
    /// The kernel was built with this option (`y` or `m`), after LTP's
    /// `needs_kconfigs`; met when no config can be read (the runtime probes
    /// then decide).
    Kconfig(&'static str),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Root => write!(f, "root"),
            Need::Tool(t) => write!(f, "cmd:{}", t.command()),
            Need::Cgroup(c) => write!(f, "cgroup:{}", c.name()),
            Need::CgroupV1(c) => write!(f, "cgroup-v1:{}", c.name()),
            Need::CgroupV2 => write!(f, "cgroup-v2"),
            Need::CgroupV2Ctrl(c) => write!(f, "cgroup-v2:{}", c.name()),
            Need::Kernel(a, b) => write!(f, "kernel>={a}.{b}"),
            Need::UserNamespaces => write!(f, "userns"),
            Need::LibseccompDev => write!(f, "libseccomp-dev"),
            Need::Docker => write!(f, "docker"),
            Need::Kconfig(o) => write!(f, "kconfig:{o}"),
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
            "freezer" => Ok(Controller::Freezer),
            "cpuset" => Ok(Controller::Cpuset),
            _ => Err(format!("unknown cgroup controller {n:?} in need {s:?}")),
        };
        match s {
            "root" => return Ok(Need::Root),
            "userns" => return Ok(Need::UserNamespaces),
            "libseccomp-dev" => return Ok(Need::LibseccompDev),
            "docker" => return Ok(Need::Docker),
            "cgroup-v2" => return Ok(Need::CgroupV2),
            _ => {}
        }
        if let Some(c) = s.strip_prefix("cmd:") {
            return Tool::ALL
                .iter()
                .find(|t| t.command() == c)
                .map(|t| Need::Tool(*t))
                .ok_or_else(|| format!("unknown tool {c:?} in need {s:?}"));
        }
        if let Some(c) = s.strip_prefix("cgroup-v2:") {
            return ctrl(c).map(Need::CgroupV2Ctrl);
        }
        if let Some(o) = s.strip_prefix("kconfig:") {
            if !crate::kconfig::is_option_name(o) {
                return Err(format!("kconfig need {s:?} must name CONFIG_[A-Z0-9_]+"));
            }
            // The text form (CLI, tests) is rare and small: a leaked copy
            // keeps `Need` Copy and its variants 'static.
            return Ok(Need::Kconfig(Box::leak(o.to_string().into_boxed_str())));
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
            Need::Cgroup(_) | Need::CgroupV1(_) | Need::CgroupV2Ctrl(_) | Need::CgroupV2 => {
                self.cgroup_unmet(&host.cgroup)
            }
            Need::Kernel(a, b) => (host.kernel_version < (*a, *b, 0))
                .then(|| format!("needs kernel >= {a}.{b} (this host runs {})", host.kernel)),
            Need::UserNamespaces => host.userns_blocked.clone(),
            Need::LibseccompDev => (!host.libseccomp_dev).then(|| {
                "needs the libseccomp headers (seccomp.h): install libseccomp-dev".to_string()
            }),
            Need::Docker => host.docker_unmet(),
            Need::Kconfig(o) => host
                .kconfig
                .as_ref()
                .filter(|c| !c.enabled(o))
                .map(|_| format!("not configured: {o} is not set")),
        }
    }
    /// `unmet` for the cgroup needs.
    fn cgroup_unmet(&self, cg: &crate::host::CgroupLayout) -> Option<String> {
        match self {
            // v2's freezer is no controller: every cgroup2 group has `cgroup.freeze`.
            Need::Cgroup(Controller::Freezer)
                if cg.v2_mount.is_some() || cg.has("freezer") =>
            {
                None
            }
            Need::Cgroup(c) => (!cg.has(c.name())).then(|| {
                format!(
                    "needs the cgroup {} controller (layout {}: v1 {:?}, v2 {:?})",
                    c.name(),
                    cg.layout,
                    cg.v1,
                    cg.v2
                )
            }),
            Need::CgroupV1(c) => (!cg.v1.iter().any(|x| x == c.name())).then(|| {
                format!(
                    "needs the {} controller on cgroup v1 (this host: layout {}, v1 {:?})",
                    c.name(),
                    cg.layout,
                    cg.v1
                )
            }),
            Need::CgroupV2Ctrl(c) => (!cg.v2.iter().any(|x| x == c.name())).then(|| {
                format!(
                    "needs the {} controller on cgroup v2 (this host: layout {}, v2 root enables {:?})",
                    c.name(),
                    cg.layout,
                    cg.v2
                )
            }),
            Need::CgroupV2 => cg.v2_mount.is_none().then(|| {
                format!(
                    "needs a cgroup v2 hierarchy (this host: layout {}, no cgroup2 mount)",
                    cg.layout
                )
            }),
            _ => None,
        }
    }
}
