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

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// The project's Docker-default-like profile, compiled in from the fixture
/// (the one source of truth) so the suite also runs where the source tree
/// is absent, e.g. in a qemu guest.
pub const PROFILE_JSON: &str = include_str!("../fixtures/seccomp/docker-default-like.json");

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
    pub caps: Caps,
    /// The native architecture in Docker's spelling (`amd64`, `arm64`, ...).
    pub arch: String,
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

// ---- the JSON format ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub default_action: String,
    pub default_errno_ret: Option<u32>,
    pub architectures: Option<Vec<String>>,
    pub arch_map: Option<Vec<ArchMap>>,
    pub syscalls: Option<Vec<SyscallBlock>>,
    pub listener_path: Option<String>,
    pub listener_metadata: Option<String>,
    pub flags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyscallBlock {
    pub name: Option<String>,
    pub names: Option<Vec<String>>,
    pub action: String,
    pub errno_ret: Option<u32>,
    pub args: Option<Vec<Arg>>,
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Filter {
    pub caps: Option<Vec<String>>,
    pub arches: Option<Vec<String>>,
    pub min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// A profile that cannot be applied, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// `line 12 column 4` for JSON errors, else the field path.
    pub at: String,
    pub msg: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.msg)
    }
}

impl std::error::Error for ProfileError {}

fn err(at: impl Into<String>, msg: impl Into<String>) -> ProfileError {
    ProfileError {
        at: at.into(),
        msg: msg.into(),
    }
}

pub fn parse(text: &str) -> Result<Profile, ProfileError> {
    serde_json::from_str(text).map_err(|e| {
        err(
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })
}

// ---- translation ----

/// One libseccomp rule, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub syscall: String,
    pub nr: i32,
    pub action: ScmpAction,
    pub conds: Vec<ScmpArgCompare>,
    /// The block it came from: `syscalls[i]`.
    pub from: String,
}

/// A profile evaluated for one environment: ready to load, not loaded.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub default: ScmpAction,
    pub arches: Vec<ScmpArch>,
    pub rules: Vec<Rule>,
}

fn action(name: &str, errno: Option<u32>, at: &str) -> Result<ScmpAction, ProfileError> {
    let errno = errno.map(|e| e as i32);
    let a = match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(libc::EPERM)),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(libc::EPERM) as u16),
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(err(
                at,
                "SCMP_ACT_NOTIFY needs a listener, which this harness does not run",
            ))
        }
        other => return Err(err(at, format!("unknown action {other:?}"))),
    };
    if errno.is_some() && !matches!(a, ScmpAction::Errno(_) | ScmpAction::Trace(_)) {
        return Err(err(
            at,
            format!("errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name}"),
        ));
    }
    Ok(a)
}

fn arch(name: &str, at: &str) -> Result<ScmpArch, ProfileError> {
    name.parse::<ScmpArch>()
        .map_err(|_| err(at, format!("unknown architecture {name:?}")))
}

fn condition(a: &Arg, at: &str) -> Result<ScmpArgCompare, ProfileError> {
    if a.index > 5 {
        return Err(err(
            format!("{at}.index"),
            format!(
                "argument index {} out of range (a syscall has arguments 0..=5)",
                a.index
            ),
        ));
    }
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // Docker's `value` is the mask, `valueTwo` the expected masked value.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                a.index,
                ScmpCompareOp::MaskedEqual(a.value),
                a.value_two,
            ))
        }
        other => {
            return Err(err(
                format!("{at}.op"),
                format!("unknown operator {other:?}"),
            ))
        }
    };
    Ok(ScmpArgCompare::new(a.index, op, a.value))
}

fn applies(inc: &Filter, exc: &Filter, env: &Env, at: &str) -> Result<bool, ProfileError> {
    let has = |c: &String| env.caps.0.contains(c);
    let kernel = |v: &str, field: &str| {
        parse_kernel(v).map(|k| env.kernel >= k).ok_or_else(|| {
            err(
                format!("{at}.{field}.minKernel"),
                format!("bad kernel version {v:?}"),
            )
        })
    };
    for (i, c) in inc
        .caps
        .iter()
        .flatten()
        .chain(exc.caps.iter().flatten())
        .enumerate()
    {
        if !CAP_NAMES.contains(&c.as_str()) {
            return Err(err(
                at,
                format!("unknown capability {c:?} (#{i} of includes/excludes caps)"),
            ));
        }
    }
    if exc.arches.iter().flatten().any(|a| *a == env.arch) || exc.caps.iter().flatten().any(has) {
        return Ok(false);
    }
    if let Some(v) = &exc.min_kernel {
        if kernel(v, "excludes")? {
            return Ok(false);
        }
    }
    if let Some(a) = &inc.arches {
        if !a.is_empty() && !a.contains(&env.arch) {
            return Ok(false);
        }
    }
    if !inc.caps.iter().flatten().all(has) {
        return Ok(false);
    }
    if let Some(v) = &inc.min_kernel {
        if !kernel(v, "includes")? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Profile {
    /// Evaluates the profile for `env`. Every block is checked (names,
    /// actions, arguments) even when `env` skips it, so a malformed rule is
    /// an error on every host.
    pub fn compile(&self, env: &Env) -> Result<Compiled, ProfileError> {
        if self.default_action.is_empty() {
            return Err(err(
                "defaultAction",
                "missing: a profile without it would disable seccomp",
            ));
        }
        let default = action(
            &self.default_action,
            self.default_errno_ret,
            "defaultAction",
        )?;
        if self.architectures.as_ref().is_some_and(|a| !a.is_empty())
            && self.arch_map.as_ref().is_some_and(|a| !a.is_empty())
        {
            return Err(err(
                "architectures",
                "give either `architectures` or `archMap`, not both",
            ));
        }
        let mut arches = Vec::new();
        for (i, a) in self.architectures.iter().flatten().enumerate() {
            arches.push(arch(a, &format!("architectures[{i}]"))?);
        }
        let native = ScmpArch::native();
        for (i, m) in self.arch_map.iter().flatten().enumerate() {
            let main = arch(&m.architecture, &format!("archMap[{i}].architecture"))?;
            let mut subs = Vec::new();
            for (j, s) in m.sub_architectures.iter().flatten().enumerate() {
                subs.push(arch(s, &format!("archMap[{i}].subArchitectures[{j}]"))?);
            }
            if main == native && arches.is_empty() {
                arches.push(main);
                arches.extend(subs);
            }
        }

        let mut rules = Vec::new();
        for (i, b) in self.syscalls.iter().flatten().enumerate() {
            let at = format!("syscalls[{i}]");
            let names: Vec<(String, &String)> = match (&b.name, &b.names) {
                (Some(_), Some(n)) if !n.is_empty() => {
                    return Err(err(&at, "give either `name` or `names`, not both"))
                }
                (Some(n), _) => vec![(format!("{at}.name"), n)],
                (None, Some(n)) if !n.is_empty() => n
                    .iter()
                    .enumerate()
                    .map(|(j, n)| (format!("{at}.names[{j}]"), n))
                    .collect(),
                _ => return Err(err(&at, "no syscall named: `names` is missing or empty")),
            };
            let act = action(&b.action, b.errno_ret, &format!("{at}.action"))?;
            let mut conds = Vec::new();
            let mut seen = [0u32; 6];
            for (k, a) in b.args.iter().flatten().enumerate() {
                conds.push(condition(a, &format!("{at}.args[{k}]"))?);
                seen[a.index as usize] += 1;
            }
            let mut resolved = Vec::new();
            for (where_, n) in names {
                let nr = ScmpSyscall::from_name(n)
                    .map_err(|_| err(where_, format!("unknown syscall {n:?}")))?;
                resolved.push((n.clone(), nr.as_raw_syscall()));
            }
            let inc = b.includes.as_ref().map_or(Filter::default(), clone_filter);
            let exc = b.excludes.as_ref().map_or(Filter::default(), clone_filter);
            if !applies(&inc, &exc, env, &at)? || act == default {
                continue;
            }
            // runc: one repeated index means each condition is its own rule.
            let groups: Vec<Vec<ScmpArgCompare>> = if seen.iter().any(|c| *c > 1) {
                conds.iter().map(|c| vec![*c]).collect()
            } else {
                vec![conds.clone()]
            };
            for (name, nr) in resolved {
                for g in &groups {
                    rules.push(Rule {
                        syscall: name.clone(),
                        nr,
                        action: act,
                        conds: g.clone(),
                        from: at.clone(),
                    });
                }
            }
        }
        Ok(Compiled {
            default,
            arches,
            rules,
        })
    }
}

fn clone_filter(f: &Filter) -> Filter {
    Filter {
        caps: f.caps.clone(),
        arches: f.arches.clone(),
        min_kernel: f.min_kernel.clone(),
    }
}

/// Reads, parses and evaluates a profile file.
pub fn load_file(path: &std::path::Path, env: &Env) -> Result<Compiled, ProfileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), e.to_string()))?;
    parse(&text)?.compile(env)
}

impl Compiled {
    /// The actions a syscall gets (empty: the default action).
    pub fn actions_for(&self, syscall: &str) -> Vec<&Rule> {
        self.rules.iter().filter(|r| r.syscall == syscall).collect()
    }

    /// Builds the libseccomp filter without loading it.
    pub fn build(&self) -> Result<ScmpFilterContext, String> {
        let mut ctx =
            ScmpFilterContext::new(self.default).map_err(|e| format!("seccomp_init: {e}"))?;
        for a in &self.arches {
            ctx.add_arch(*a)
                .map_err(|e| format!("adding arch {a:?}: {e}"))?;
        }
        for r in &self.rules {
            let res = if r.conds.is_empty() {
                ctx.add_rule(r.action, ScmpSyscall::from_raw_syscall(r.nr))
            } else {
                ctx.add_rule_conditional(r.action, ScmpSyscall::from_raw_syscall(r.nr), &r.conds)
            };
            res.map_err(|e| format!("{}: rule for {}: {e}", r.from, r.syscall))?;
        }
        Ok(ctx)
    }

    /// Loads the filter into the calling thread. Only helper children call
    /// this: the test process must never carry a filter.
    pub fn load(&self) -> Result<(), String> {
        self.build()?
            .load()
            .map_err(|e| format!("seccomp_load: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
