//! The kernel's build options: what `kconfig:CONFIG_X` needs (after LTP's
//! `needs_kconfigs`) read, and the fragment `ci/kernel/isocheck.config`.
//!
//! A kernel built without an option gives a row "not configured" instead of
//! a mix of failed and broken rows. Where no config can be read, a kconfig
//! need counts as met: the runtime probes (userns, cgroup controllers, tools)
//! decide as they did before, and `doctor` says so.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One kernel's options, from its `.config` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Where the text came from (a path), for `doctor` and the reasons.
    pub source: String,
    options: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses `.config` text: `CONFIG_X=value` lines count, everything else
    /// (`# CONFIG_X is not set`, comments, blanks) leaves the option unset.
    pub fn parse(source: &str, text: &str) -> KernelConfig {
        let options = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        KernelConfig {
            source: source.to_string(),
            options,
        }
    }

    /// The option's value (`y`, `m`, a number, a string), None when unset.
    pub fn value(&self, option: &str) -> Option<&str> {
        self.options.get(option).map(String::as_str)
    }

    /// Built in or a module: a module is loadable, so the feature exists.
    pub fn enabled(&self, option: &str) -> bool {
        matches!(self.value(option), Some("y" | "m"))
    }

    /// How many options are set, for `doctor`.
    pub fn len(&self) -> usize {
        self.options.len()
    }

    /// No option set (an empty or foreign file).
    pub fn is_empty(&self) -> bool {
        self.options.is_empty()
    }

    /// The running kernel's config from the first readable `candidates`.
    pub fn load(release: &str) -> Option<KernelConfig> {
        candidates(release).into_iter().find_map(|p| {
            let text = read_config(&p).ok()?;
            let cfg = KernelConfig::parse(&p.display().to_string(), &text);
            (!cfg.is_empty()).then_some(cfg)
        })
    }
}

/// Where a kernel's config is looked for, first found wins: the file
/// `ci/kernel-run.sh` hands its guest (`ISOCHECK_KCONFIG`), the kernel's own
/// copy (`CONFIG_IKCONFIG_PROC`), then the distribution's.
pub fn candidates(release: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var_os("ISOCHECK_KCONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    out.push("/proc/config.gz".into());
    out.push(format!("/boot/config-{release}").into());
    out.push(format!("/lib/modules/{release}/config").into());
    out
}

/// A config file's text, gunzipped when it starts with gzip's magic.
pub fn read_config(path: &Path) -> std::io::Result<String> {
    let raw = std::fs::read(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut text)?;
        Ok(text)
    } else {
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }
}

/// Whether `s` is an option name (`CONFIG_` and upper-case, digits, `_`).
pub fn is_option_name(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// What ci/kernel-run.sh's guest needs beyond the rows' own options, from
/// `make tinyconfig` up: a PVH entry for qemu's direct boot, serial
/// consoles (ttyS0 console, ttyS1 the report), the initramfs, the virtio
/// tools disk (ext4), what glibc, Rust's std, busybox, iproute2 and
/// iptables-nft call, and its own config in /proc (IKCONFIG_PROC).
pub const BOOT: &[&str] = &[
    "CONFIG_64BIT",
    "CONFIG_ACPI",
    "CONFIG_ADVISE_SYSCALLS",
    "CONFIG_BINFMT_ELF",
    "CONFIG_BINFMT_SCRIPT",
    "CONFIG_BLK_CGROUP",
    "CONFIG_BLK_DEV",
    "CONFIG_BLK_DEV_INITRD",
    "CONFIG_BLK_DEV_LOOP",
    "CONFIG_BLOCK",
    "CONFIG_BPF_SYSCALL",
    "CONFIG_BRIDGE",
    "CONFIG_BRIDGE_NETFILTER",
    "CONFIG_CGROUP_BPF",
    "CONFIG_CGROUP_CPUACCT",
    "CONFIG_CGROUP_DEVICE",
    "CONFIG_CGROUP_FREEZER",
    "CONFIG_CGROUP_SCHED",
    "CONFIG_CHECKPOINT_RESTORE",
    "CONFIG_COREDUMP",
    "CONFIG_CPUSETS",
    "CONFIG_DEVTMPFS",
    "CONFIG_DUMMY",
    "CONFIG_ELF_CORE",
    "CONFIG_EPOLL",
    "CONFIG_EVENTFD",
    "CONFIG_EXT4_FS",
    "CONFIG_EXT4_FS_POSIX_ACL",
    "CONFIG_FAIR_GROUP_SCHED",
    "CONFIG_FHANDLE",
    "CONFIG_FILE_LOCKING",
    "CONFIG_FUTEX",
    "CONFIG_HIGH_RES_TIMERS",
    "CONFIG_HYPERVISOR_GUEST",
    "CONFIG_IKCONFIG",
    "CONFIG_IKCONFIG_PROC",
    "CONFIG_INET",
    "CONFIG_INOTIFY_USER",
    "CONFIG_IPV6",
    "CONFIG_IP_NF_FILTER",
    "CONFIG_IP_NF_IPTABLES",
    "CONFIG_IP_NF_MANGLE",
    "CONFIG_IP_NF_NAT",
    "CONFIG_IP_NF_TARGET_MASQUERADE",
    "CONFIG_IP_NF_TARGET_REJECT",
    "CONFIG_KCMP",
    "CONFIG_KEYS",
    "CONFIG_MEMBARRIER",
    "CONFIG_MULTIUSER",
    "CONFIG_NET",
    "CONFIG_NETDEVICES",
    "CONFIG_NETFILTER",
    "CONFIG_NETFILTER_ADVANCED",
    "CONFIG_NETFILTER_XTABLES",
    "CONFIG_NETFILTER_XT_MARK",
    "CONFIG_NETFILTER_XT_MATCH_ADDRTYPE",
    "CONFIG_NETFILTER_XT_MATCH_COMMENT",
    "CONFIG_NETFILTER_XT_MATCH_CONNTRACK",
    "CONFIG_NETFILTER_XT_NAT",
    "CONFIG_NET_CORE",
    "CONFIG_NF_CONNTRACK",
    "CONFIG_NF_TABLES",
    "CONFIG_NF_TABLES_INET",
    "CONFIG_NF_TABLES_IPV4",
    "CONFIG_NFT_COMPAT",
    "CONFIG_NFT_CT",
    "CONFIG_NFT_MASQ",
    "CONFIG_NFT_NAT",
    "CONFIG_OVERLAY_FS",
    "CONFIG_PACKET",
    "CONFIG_PARAVIRT",
    "CONFIG_PCI",
    "CONFIG_POSIX_MQUEUE",
    "CONFIG_POSIX_TIMERS",
    "CONFIG_PRINTK",
    "CONFIG_PROC_FS",
    "CONFIG_PROC_SYSCTL",
    "CONFIG_PVH",
    "CONFIG_SECCOMP",
    "CONFIG_SECURITY",
    "CONFIG_SECURITYFS",
    "CONFIG_SERIAL_8250",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_SHMEM",
    "CONFIG_SIGNALFD",
    "CONFIG_SMP",
    "CONFIG_SYSFS",
    "CONFIG_TIMERFD",
    "CONFIG_TMPFS",
    "CONFIG_TMPFS_POSIX_ACL",
    "CONFIG_TMPFS_XATTR",
    "CONFIG_TTY",
    "CONFIG_UNIX",
    "CONFIG_UNIX98_PTYS",
    "CONFIG_VIRTIO_BLK",
    "CONFIG_VIRTIO_CONSOLE",
    "CONFIG_VIRTIO_MENU",
    "CONFIG_VIRTIO_PCI",
    "CONFIG_X86_IOPL_IOPERM",
    "CONFIG_X86_MPPARSE",
];

/// Options the fragment turns off. A built-in `sit` driver gives every new
/// network namespace a `sit0` link (found on a 6.1 build: the rows that
/// count a new namespace's links then saw two); Debian builds it as a module,
/// which a guest without modules never loads.
pub const OFF: &[&str] = &["CONFIG_IPV6_SIT"];

/// Every option the fragment sets: `BOOT` and the rows' `kconfig:` needs
/// (the caller collects them: the registry sits layers above this module),
/// sorted, each once.
pub fn fragment_options(rows: impl IntoIterator<Item = &'static str>) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = rows.into_iter().chain(BOOT.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The text of `ci/kernel/isocheck.config` (`isocheck list --kconfig`).
pub fn fragment(rows: impl IntoIterator<Item = &'static str>) -> String {
    let mut out = String::from(
        "# The CONFIG_ options isocheck's rows need, and what ci/kernel-run.sh's qemu\n\
         # guest needs to boot, merged over `make tinyconfig` (or defconfig) by\n\
         # ci/kernel-build.sh: everything built in, so the guest needs no modules.\n\
         # Generated: `isocheck list --kconfig > ci/kernel/isocheck.config` (the rows'\n\
         # `kconfig:` needs and src/kconfig.rs's BOOT); tests/registry.rs checks it.\n",
    );
    for o in fragment_options(rows) {
        out.push_str(o);
        out.push_str("=y\n");
    }
    for o in OFF {
        out.push_str(&format!("# {o} is not set\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SAMPLE: &str = "#\n# Automatically generated file; DO NOT EDIT.\n\
        CONFIG_USER_NS=y\nCONFIG_VETH=m\n# CONFIG_TIME_NS is not set\n\
        CONFIG_NR_CPUS=64\nCONFIG_LOCALVERSION=\"-isocheck\"\n\n  CONFIG_PID_NS=y  \n";

    #[rstest]
    #[case("CONFIG_USER_NS", Some("y"), true)]
    #[case("CONFIG_VETH", Some("m"), true)]
    #[case("CONFIG_TIME_NS", None, false)]
    #[case("CONFIG_ABSENT", None, false)]
    #[case("CONFIG_NR_CPUS", Some("64"), false)]
    #[case("CONFIG_LOCALVERSION", Some("-isocheck"), false)]
    #[case("CONFIG_PID_NS", Some("y"), true)]
    fn parses_config_lines(#[case] opt: &str, #[case] value: Option<&str>, #[case] enabled: bool) {
        let cfg = KernelConfig::parse("sample", SAMPLE);
        assert_eq!(cfg.value(opt), value);
        assert_eq!(cfg.enabled(opt), enabled);
    }

    #[rstest]
    #[case("CONFIG_USER_NS", true)]
    #[case("CONFIG_X86_64", true)]
    #[case("CONFIG_", false)]
    #[case("USER_NS", false)]
    #[case("CONFIG_user_ns", false)]
    #[case("CONFIG_USER NS", false)]
    fn option_names(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_option_name(s), ok);
    }

    #[test]
    fn reads_gzip_and_plain() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("config");
        std::fs::write(&plain, SAMPLE).unwrap();
        let gz = dir.path().join("config.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(SAMPLE.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_config(&plain).unwrap(), SAMPLE);
        assert_eq!(read_config(&gz).unwrap(), SAMPLE);
    }

    #[test]
    fn fragment_is_sorted_and_every_line_an_option() {
        let opts = fragment_options(["CONFIG_USER_NS", "CONFIG_VETH", "CONFIG_USER_NS"]);
        assert!(opts.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
        assert!(opts.iter().all(|o| is_option_name(o)), "{opts:?}");
        assert!(opts.contains(&"CONFIG_USER_NS"), "a row's need is in it");
        assert!(opts.contains(&"CONFIG_PVH"), "the boot needs are in it");
        let text = fragment(["CONFIG_USER_NS"]);
        assert!(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with("=y")));
    }
}
