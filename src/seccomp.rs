//! Seccomp filters: Docker's JSON profile format, read and applied by the
//! harness with libseccomp.
//!
//! The profile file is the single source of truth: the seccomp section loads
//! it through libseccomp in a helper child, and the Docker section hands the
//! same file to `docker run --security-opt seccomp=FILE`. Parsing and
//! translation are pure (and tested); loading happens only in single-threaded
//! helper children, never in a test process, where a kill action would take
//! the whole test binary down.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

/// The capabilities of a default Docker container (moby's
/// `oci/caps/defaults.go`): no CAP_SYS_ADMIN, which is what makes the
/// default profile refuse `unshare` and namespace flags of `clone`.
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<i32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<serde_json::Value>,
    #[serde(default)]
    syscalls: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<i32>,
    #[serde(default)]
    args: Vec<RawArg>,
    #[serde(default)]
    includes: RawFilter,
    #[serde(default)]
    excludes: RawFilter,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFilter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// One libseccomp rule, resolved and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub syscall: String,
    pub nr: i32,
    pub action: ScmpAction,
    pub args: Vec<ScmpArgCompare>,
}

/// A profile translated for one capability set.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub default_action: ScmpAction,
    pub arches: Vec<ScmpArch>,
    pub rules: Vec<Rule>,
}

fn action(name: &str, errno: Option<i32>, field: &str) -> Result<ScmpAction, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(libc::EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(libc::EPERM) as u16),
        other => return Err(format!("{field}: unknown action {other:?}")),
    })
}

fn compare(a: &RawArg, field: &str) -> Result<ScmpArgCompare, String> {
    if a.index > 5 {
        return Err(format!(
            "{field}.index: {} is not a syscall argument (0..=5)",
            a.index
        ));
    }
    let (op, datum) = match a.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, a.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, a.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, a.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, a.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, a.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, a.value),
        // Docker: value is the mask, valueTwo the value compared with.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(a.value), a.value_two),
        other => return Err(format!("{field}.op: unknown operator {other:?}")),
    };
    Ok(ScmpArgCompare::new(a.index, op, datum))
}

fn kernel_at_least(min: &str, running: (u32, u32, u32)) -> bool {
    let v = crate::host::parse_kernel_version(min);
    running >= v
}

/// Parses a Docker-format profile and translates it for a capability set
/// and kernel, as Docker's engine does. Every error names its field (or,
/// for bad JSON, the line and column); nothing is half-translated.
pub fn translate(json: &str, caps: &[&str], kernel: (u32, u32, u32)) -> Result<Filter, String> {
    let raw: RawProfile = serde_json::from_str(json).map_err(|e| format!("profile: {e}"))?;
    if !raw.arch_map.is_empty() && !raw.architectures.is_empty() {
        return Err("profile: give `architectures` or `archMap`, not both".into());
    }
    let default_action = action(&raw.default_action, raw.default_errno_ret, "defaultAction")?;
    let mut arches = Vec::new();
    for (i, a) in raw.architectures.iter().enumerate() {
        arches.push(
            a.parse::<ScmpArch>()
                .map_err(|_| format!("architectures[{i}]: unknown architecture {a:?}"))?,
        );
    }
    let mut rules = Vec::new();
    for (i, r) in raw.syscalls.iter().enumerate() {
        let field = format!("syscalls[{i}]");
        let act = action(
            &r.action,
            r.errno_ret.or(raw.default_errno_ret),
            &format!("{field}.action"),
        )?;
        let args = r
            .args
            .iter()
            .enumerate()
            .map(|(j, a)| compare(a, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<&String> = r.names.iter().collect();
        names.extend(r.name.iter());
        if names.is_empty() {
            return Err(format!("{field}.names: no syscall named"));
        }
        let mut resolved = Vec::new();
        for (j, n) in names.iter().enumerate() {
            let nr = ScmpSyscall::from_name(n)
                .map_err(|_| format!("{field}.names[{j}]: unknown syscall {n:?}"))?;
            resolved.push((n.to_string(), i32::from(nr)));
        }
        for (k, c) in r.includes.caps.iter().chain(&r.excludes.caps).enumerate() {
            if !c.starts_with("CAP_") {
                return Err(format!("{field}: capability {k} {c:?} must be CAP_…"));
            }
        }
        // Docker: a rule applies when the container has every included
        // capability and none of the excluded ones (and the kernel is new
        // enough / not too new).
        let has = |c: &String| caps.iter().any(|x| x == c);
        let included = r.includes.caps.iter().all(has)
            && r.includes
                .min_kernel
                .as_deref()
                .is_none_or(|m| kernel_at_least(m, kernel));
        let excluded = r.excludes.caps.iter().any(has)
            || r.excludes
                .min_kernel
                .as_deref()
                .is_some_and(|m| kernel_at_least(m, kernel));
        let _ = (&r.includes.arches, &r.excludes.arches, &r.comment);
        if !included || excluded {
            continue;
        }
        for (name, nr) in resolved {
            rules.push(Rule {
                syscall: name,
                nr,
                action: act,
                args: args.clone(),
            });
        }
    }
    Ok(Filter {
        default_action,
        arches,
        rules,
    })
}

impl Filter {
    /// Builds the libseccomp context. Rules whose action equals the default
    /// are skipped (libseccomp refuses them, Docker skips them too).
    pub fn context(&self) -> Result<ScmpFilterContext, String> {
        let mut ctx = ScmpFilterContext::new(self.default_action).map_err(|e| e.to_string())?;
        for a in &self.arches {
            if *a != ScmpArch::native() {
                let _ = ctx.add_arch(*a);
            }
        }
        for r in &self.rules {
            if r.action == self.default_action {
                continue;
            }
            let res = if r.args.is_empty() {
                ctx.add_rule(r.action, r.nr)
            } else {
                ctx.add_rule_conditional(r.action, r.nr, &r.args)
            };
            res.map_err(|e| format!("rule for {}: {e}", r.syscall))?;
        }
        Ok(ctx)
    }

    /// Loads the filter into the calling thread (and its future children).
    /// Only ever call this in a helper child.
    pub fn load(&self) -> Result<(), String> {
        self.context()?
            .load()
            .map_err(|e| format!("loading the filter: {e}"))
    }
}

/// `Seccomp:` and `Seccomp_filters:` of a /proc status text.
pub fn status_fields(status: &str) -> (Option<u32>, Option<u32>) {
    let get = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
    };
    (get("Seccomp:"), get("Seccomp_filters:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const KERNEL: (u32, u32, u32) = (6, 1, 0);
    const FIXTURE: &str = include_str!("../fixtures/seccomp/docker-default-like.json");

    #[test]
    fn the_fixture_blocks_unshare_without_cap_sys_admin_only() {
        let f = translate(FIXTURE, DOCKER_DEFAULT_CAPS, KERNEL).unwrap();
        assert_eq!(f.default_action, ScmpAction::Allow);
        let unshare = f
            .rules
            .iter()
            .find(|r| r.syscall == "unshare")
            .expect("unshare rule");
        assert_eq!(unshare.action, ScmpAction::Errno(libc::EPERM));
        assert!(f
            .rules
            .iter()
            .any(|r| r.syscall == "clone" && !r.args.is_empty()));
        let mut with_admin = DOCKER_DEFAULT_CAPS.to_vec();
        with_admin.push("CAP_SYS_ADMIN");
        let f = translate(FIXTURE, &with_admin, KERNEL).unwrap();
        assert!(
            f.rules.iter().all(|r| r.syscall != "unshare"),
            "CAP_SYS_ADMIN excludes the rule"
        );
    }

    #[rstest]
    #[case::includes_met(r#"{"includes":{"caps":["CAP_CHOWN"]}}"#, true)]
    #[case::includes_unmet(r#"{"includes":{"caps":["CAP_SYS_ADMIN"]}}"#, false)]
    #[case::excludes_hit(r#"{"excludes":{"caps":["CAP_CHOWN"]}}"#, false)]
    #[case::excludes_miss(r#"{"excludes":{"caps":["CAP_SYS_ADMIN"]}}"#, true)]
    #[case::min_kernel_met(r#"{"includes":{"minKernel":"5.8"}}"#, true)]
    #[case::min_kernel_unmet(r#"{"includes":{"minKernel":"6.5"}}"#, false)]
    fn includes_and_excludes_follow_docker(#[case] filter: &str, #[case] applies: bool) {
        let f: serde_json::Value = serde_json::from_str(filter).unwrap();
        let mut rule = serde_json::json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"});
        for (k, v) in f.as_object().unwrap() {
            rule[k] = v.clone();
        }
        let p =
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}).to_string();
        let f = translate(&p, &["CAP_CHOWN"], KERNEL).unwrap();
        assert_eq!(f.rules.len(), usize::from(applies));
    }

    #[rstest]
    #[case::masked_eq(
        r#"{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}"#,
        ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(2114060288), 0)
    )]
    #[case::eq(
        r#"{"index":1,"value":7,"op":"SCMP_CMP_EQ"}"#,
        ScmpArgCompare::new(1, ScmpCompareOp::Equal, 7)
    )]
    #[case::ne(
        r#"{"index":5,"value":0,"op":"SCMP_CMP_NE"}"#,
        ScmpArgCompare::new(5, ScmpCompareOp::NotEqual, 0)
    )]
    fn argument_rules_translate(#[case] arg: &str, #[case] want: ScmpArgCompare) {
        let p = format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{arg}]}}]}}"#
        );
        let f = translate(&p, &[], KERNEL).unwrap();
        assert_eq!(f.rules[0].args, vec![want]);
    }

    #[rstest]
    #[case::bad_json(
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n",
        "line 4"
    )]
    #[case::unknown_syscall(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read","frobnicate"],"action":"SCMP_ACT_ERRNO"}]}"#, "syscalls[0].names[1]: unknown syscall \"frobnicate\"")]
    #[case::unknown_action(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_MAYBE"}]}"#, "syscalls[0].action: unknown action")]
    #[case::unknown_default(r#"{"defaultAction":"ALLOW"}"#, "defaultAction: unknown action")]
    #[case::bad_op(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}"#, "syscalls[0].args[0].op: unknown operator")]
    #[case::bad_index(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].index: 6")]
    #[case::missing_value(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_EQ"}]}]}"#, "missing field `value`")]
    #[case::unknown_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscals":[]}"#,
        "unknown field `syscals`"
    )]
    #[case::unknown_arch(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
        "architectures[0]: unknown architecture"
    )]
    #[case::no_names(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}"#,
        "syscalls[0].names: no syscall named"
    )]
    fn malformed_profiles_name_the_field(#[case] profile: &str, #[case] message: &str) {
        let err = translate(profile, DOCKER_DEFAULT_CAPS, KERNEL).unwrap_err();
        assert!(err.contains(message), "{err:?} should contain {message:?}");
    }

    #[rstest]
    #[case("Seccomp:\t2\nSeccomp_filters:\t1\n", (Some(2), Some(1)))]
    #[case("Seccomp:\t0\nSeccomp_filters:\t0\n", (Some(0), Some(0)))]
    #[case("Name:\tsh\n", (None, None))]
    fn status_fields_parse(#[case] text: &str, #[case] want: (Option<u32>, Option<u32>)) {
        assert_eq!(status_fields(text), want);
    }
}
