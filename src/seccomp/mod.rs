//! Docker's seccomp profile format: parse, evaluate, translate to libseccomp.
//!
//! The project's Docker-default-like profile
//! (`fixtures/seccomp/docker-default-like.json`) is the single source of truth
//! for two layers: the harness applies it here with libseccomp, and the Docker
//! section hands the same file to `docker run --security-opt seccomp=FILE`. So
//! the format is Docker's (`defaultAction`, `syscalls[].names`, `action`,
//! `errnoRet`, `args`, `includes`/`excludes` with `caps`, `arches`,
//! `minKernel`, `architectures`/`archMap`), and the evaluation follows moby's
//! `setupSeccomp` and runc's `matchCall`:
//! - a syscall block is skipped when `excludes` matches (any listed cap held,
//!   the native arch listed, kernel >= minKernel) or `includes` does not (a
//!   listed cap missing, the arch not listed, kernel < minKernel);
//! - a rule whose action equals the default action is dropped (libseccomp
//!   refuses it);
//! - arguments are ANDed in one rule, unless one index repeats: then each
//!   condition becomes its own rule (ORed), as runc does.
//!
//! Unlike runc, which skips syscall names it cannot resolve, an unknown name
//! is an error here: the profile is ours, and a typo must not silently widen
//! or narrow it. Every error names where it is (`syscalls[3].names[7]`, or the
//! JSON line and column), and nothing is applied.
//!
//! Docker evaluates `caps` against the container's capability set, not the
//! caller's: the harness runs as root with CAP_SYS_ADMIN, so the set is an
//! explicit parameter ([`Caps`]), by default Docker's default set (which lacks
//! CAP_SYS_ADMIN). Translation is pure; loading happens only in
//! [`Compiled::load`], which only helper children call.

use std::collections::BTreeSet;
use std::path::PathBuf;

mod compile;
mod profile;

pub use compile::{load_file, Compiled, Rule};
pub use profile::{parse, ArchMap, Arg, Filter, Profile, ProfileError, SyscallBlock};

/// The project's Docker-default-like profile, compiled in from the fixture
/// (the one source of truth) so the suite also runs where the source tree
/// is absent, e.g. in a qemu guest.
pub const PROFILE_JSON: &str = include_str!("../../fixtures/seccomp/docker-default-like.json");

/// Where the project's Docker-default-like profile lives in the source tree.
pub fn profile_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/seccomp/docker-default-like.json")
}

/// The capabilities Docker gives a container by default (moby's
/// `oci/caps/defaults.go`): no CAP_SYS_ADMIN.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capability names by bit number (linux/capability.h).
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capability set the profile's `includes`/`excludes` are evaluated against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps(pub BTreeSet<String>);

impl Caps {
    /// The capabilities Docker grants a container by default, which its profile's `includes` are written for.
    pub fn docker_default() -> Caps {
        Caps(DOCKER_DEFAULT_CAPS.iter().map(|s| s.to_string()).collect())
    }

    /// The names of the bits set in a `CapEff:`-style hex mask.
    pub fn from_mask(mask: u64) -> Caps {
        Caps(
            CAP_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1u64 << i) != 0)
                .map(|(_, n)| n.to_string())
                .collect(),
        )
    }

    /// This process's effective set (`CapEff` of /proc/self/status).
    pub fn effective() -> Result<Caps, String> {
        let s = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        let hex = s
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .ok_or("no CapEff in /proc/self/status")?;
        u64::from_str_radix(hex.trim(), 16)
            .map(Caps::from_mask)
            .map_err(|e| format!("CapEff {hex:?}: {e}"))
    }

    /// `docker-default`, `effective`, `none`, or a comma-separated list.
    pub fn parse(spec: &str) -> Result<Caps, String> {
        match spec {
            "docker-default" => Ok(Caps::docker_default()),
            "effective" => Caps::effective(),
            "none" => Ok(Caps(BTreeSet::new())),
            list => {
                let mut set = BTreeSet::new();
                for c in list.split(',').filter(|c| !c.is_empty()) {
                    let c = c.trim().to_ascii_uppercase();
                    let c = if c.starts_with("CAP_") {
                        c
                    } else {
                        format!("CAP_{c}")
                    };
                    if !CAP_NAMES.contains(&c.as_str()) {
                        return Err(format!("unknown capability {c:?}"));
                    }
                    set.insert(c);
                }
                Ok(Caps(set))
            }
        }
    }
}

/// What the profile is evaluated against.
#[derive(Clone, Debug)]
pub struct Env {
    /// The capabilities `includes`/`excludes` test against.
    pub caps: Caps,
    /// The native architecture in Docker's spelling (`amd64`, `arm64`, ...).
    pub arch: String,
    /// `(major, minor)` of the kernel, for `minKernel`.
    pub kernel: (u32, u32),
}

impl Env {
    /// This host, with Docker's default capability set.
    pub fn host() -> Env {
        let rel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Env {
            caps: Caps::docker_default(),
            arch: docker_arch(std::env::consts::ARCH).to_string(),
            kernel: parse_kernel(&rel).unwrap_or((0, 0)),
        }
    }
}

/// Rust's architecture name in the spelling of Docker's `arches` (moby's
/// `goToNative` applied to GOARCH).
pub fn docker_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp};
    use rstest::rstest;

    fn env(caps: &[&str]) -> Env {
        Env {
            caps: Caps(caps.iter().map(|s| s.to_string()).collect()),
            arch: "amd64".into(),
            kernel: (6, 1),
        }
    }

    fn fixture() -> Profile {
        parse(&std::fs::read_to_string(profile_path()).unwrap()).unwrap()
    }

    #[test]
    fn fixture_blocks_namespaces_without_cap_sys_admin() {
        let c = fixture()
            .compile(&Env {
                arch: "amd64".into(),
                ..Env::host()
            })
            .unwrap();
        assert_eq!(c.default, ScmpAction::Errno(libc::EPERM));
        assert!(
            c.actions_for("unshare").is_empty(),
            "unshare falls to EPERM"
        );
        assert!(c.actions_for("setns").is_empty(), "setns falls to EPERM");
        let clone = c.actions_for("clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].conds,
            vec![ScmpArgCompare::new(
                0,
                ScmpCompareOp::MaskedEqual(2114060288),
                0
            )]
        );
        let clone3 = c.actions_for("clone3");
        assert_eq!(clone3[0].action, ScmpAction::Errno(libc::ENOSYS));
        for s in ["execve", "read", "write", "exit_group", "arch_prctl"] {
            assert_eq!(c.actions_for(s)[0].action, ScmpAction::Allow, "{s}");
        }
        // libseccomp accepts every rule (built, never loaded here).
        c.build().unwrap();
    }

    #[test]
    fn fixture_allows_namespaces_with_cap_sys_admin() {
        let c = fixture().compile(&env(&["CAP_SYS_ADMIN"])).unwrap();
        for s in ["unshare", "setns", "clone", "clone3", "mount"] {
            let r = c.actions_for(s);
            assert_eq!(r.len(), 1, "{s}: {r:?}");
            assert_eq!(r[0].action, ScmpAction::Allow);
            assert!(r[0].conds.is_empty());
        }
        c.build().unwrap();
    }

    #[rstest]
    #[case::amd64("amd64", true, false)]
    #[case::s390x("s390x", false, true)]
    fn arch_filters(#[case] arch: &str, #[case] arch_prctl: bool, #[case] clone_arg1: bool) {
        let c = fixture()
            .compile(&Env {
                arch: arch.into(),
                ..env(&[])
            })
            .unwrap();
        assert_eq!(!c.actions_for("arch_prctl").is_empty(), arch_prctl);
        let clone = c.actions_for("clone");
        assert_eq!(clone.len(), 1);
        let idx = if clone_arg1 { 1 } else { 0 };
        assert_eq!(
            clone[0].conds,
            vec![ScmpArgCompare::new(
                idx,
                ScmpCompareOp::MaskedEqual(2114060288),
                0
            )]
        );
    }

    #[rstest]
    #[case::minimal(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["execve"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#, 1)]
    #[case::rule_equal_to_default_is_dropped(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#, 0)]
    #[case::singular_name(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"uname","action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#, 1)]
    #[case::and_of_distinct_args(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"},{"index":1,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#, 1)]
    #[case::or_of_repeated_index(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#, 2)]
    #[case::nulls_like_docker(r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":null}],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":null,"comment":"","includes":{},"excludes":{}}]}"#, 1)]
    #[case::includes_cap_missing(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#, 0)]
    #[case::min_kernel_met(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}}]}"#, 1)]
    #[case::min_kernel_unmet(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"7.0"}}]}"#, 0)]
    fn valid_profiles(#[case] json: &str, #[case] rules: usize) {
        let c = parse(json).unwrap().compile(&env(&[])).unwrap();
        assert_eq!(c.rules.len(), rules, "{:?}", c.rules);
        c.build().unwrap();
    }

    #[rstest]
    #[case::not_json(
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n",
        "line 4 column 0"
    )]
    #[case::unknown_field(
        "{\n\"defaultAction\":\"SCMP_ACT_ALLOW\",\n\"syscals\":[]}",
        "line 3 column"
    )]
    #[case::wrong_type("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\n\"syscalls\":[{\"names\":\"read\",\"action\":\"SCMP_ACT_ALLOW\"}]}", "line 2 column")]
    #[case::negative_value("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_KILL\",\"args\":[{\"index\":0,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}", "line 1 column")]
    #[case::missing_op(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","args":[{"index":0,"value":1}]}]}"#, "line 1 column")]
    #[case::unknown_syscall(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL"},{"names":["write","no_such_call"],"action":"SCMP_ACT_KILL"}]}"#, "syscalls[1].names[1]: unknown syscall \"no_such_call\"")]
    #[case::unknown_action(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_EXPLODE"}]}"#, "syscalls[0].action: unknown action \"SCMP_ACT_EXPLODE\"")]
    #[case::unknown_default(r#"{"defaultAction":"ALLOW"}"#, "defaultAction: unknown action")]
    #[case::missing_default(r#"{"syscalls":[]}"#, "defaultAction: missing")]
    #[case::unknown_op(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}"#, "syscalls[0].args[0].op: unknown operator")]
    #[case::index_out_of_range(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].index: argument index 6")]
    #[case::errno_on_allow(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":5}]}"#, "syscalls[0].action: errnoRet")]
    #[case::name_and_names(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_KILL"}]}"#, "syscalls[0]: give either")]
    #[case::no_names(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_KILL"}]}"#,
        "syscalls[0]: no syscall named"
    )]
    #[case::both_arch_forms(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#, "architectures: give either")]
    #[case::unknown_arch(r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_Z80"]}]}"#, "archMap[0].subArchitectures[0]: unknown architecture")]
    #[case::unknown_cap(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","excludes":{"caps":["CAP_SYS_ADMN"]}}]}"#, "syscalls[0]: unknown capability \"CAP_SYS_ADMN\"")]
    #[case::bad_min_kernel(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","includes":{"minKernel":"new"}}]}"#, "syscalls[0].includes.minKernel: bad kernel version")]
    #[case::malformed_rule_in_skipped_block(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}],"includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#, "syscalls[0].args[0].index")]
    fn malformed_profiles(#[case] json: &str, #[case] expected: &str) {
        let e = parse(json)
            .and_then(|p| p.compile(&env(&[])))
            .expect_err("must be rejected");
        let text = e.to_string();
        assert!(text.contains(expected), "error {text:?} lacks {expected:?}");
    }

    #[test]
    fn an_unknown_syscall_in_the_fixture_would_be_named_with_its_line_free_path() {
        let text =
            std::fs::read_to_string(profile_path())
                .unwrap()
                .replacen("\"uname\"", "\"unamee\"", 1);
        let e = parse(&text).unwrap().compile(&env(&[])).unwrap_err();
        assert!(e.at.starts_with("syscalls[0].names["), "{e}");
        assert!(e.msg.contains("unamee"), "{e}");
    }

    #[rstest]
    #[case("docker-default", false)]
    #[case("CAP_SYS_ADMIN,chown", true)]
    #[case("none", false)]
    fn caps_spec(#[case] spec: &str, #[case] sys_admin: bool) {
        assert_eq!(
            Caps::parse(spec).unwrap().0.contains("CAP_SYS_ADMIN"),
            sys_admin
        );
    }

    #[test]
    fn caps_spec_rejects_unknown() {
        assert!(Caps::parse("CAP_SYS_ADMN").is_err());
    }

    #[test]
    fn cap_mask_bits() {
        let c = Caps::from_mask(1 << 21 | 1);
        assert_eq!(
            c.0.iter().map(String::as_str).collect::<Vec<_>>(),
            ["CAP_CHOWN", "CAP_SYS_ADMIN"]
        );
    }

    #[rstest]
    #[case("6.18.44", Some((6, 18)))]
    #[case("5.10.0-28-cloud-amd64", Some((5, 10)))]
    #[case("4.8", Some((4, 8)))]
    #[case("x", None)]
    fn kernel_versions(#[case] s: &str, #[case] want: Option<(u32, u32)>) {
        assert_eq!(parse_kernel(s), want);
    }
}
