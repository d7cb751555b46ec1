//! Translation of a profile for one environment into libseccomp rules
//! (moby's `setupSeccomp`, runc's `matchCall`), and building and loading
//! the filter.

use super::profile::{err, parse, Arg, Filter, Profile, ProfileError, SyscallBlock};
use super::{parse_kernel, Env, CAP_NAMES};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// One libseccomp rule, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The syscall's name as the profile spells it.
    pub syscall: String,
    /// Its number on the native architecture, as libseccomp resolves it.
    pub nr: i32,
    /// What the filter does on a match.
    pub action: ScmpAction,
    /// Argument comparisons that must all hold; empty matches every call.
    pub conds: Vec<ScmpArgCompare>,
    /// The block it came from: `syscalls[i]`.
    pub from: String,
}

/// A profile evaluated for one environment: ready to load, not loaded.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The action for calls no rule matches.
    pub default: ScmpAction,
    /// The architectures the filter covers besides the native one.
    pub arches: Vec<ScmpArch>,
    /// The rules of every block that applies to this environment, in profile order.
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
        let default = self.default_action()?;
        let arches = self.arches()?;
        let mut rules = Vec::new();
        for (i, b) in self.syscalls.iter().flatten().enumerate() {
            rules.extend(block_rules(b, &format!("syscalls[{i}]"), env, default)?);
        }
        Ok(Compiled {
            default,
            arches,
            rules,
        })
    }

    /// The default action; required, since a profile without one would
    /// disable seccomp.
    fn default_action(&self) -> Result<ScmpAction, ProfileError> {
        if self.default_action.is_empty() {
            return Err(err(
                "defaultAction",
                "missing: a profile without it would disable seccomp",
            ));
        }
        action(
            &self.default_action,
            self.default_errno_ret,
            "defaultAction",
        )
    }

    /// The filter's architectures: `architectures`, or the native entry of
    /// `archMap` with its sub-architectures. Every name is checked.
    fn arches(&self) -> Result<Vec<ScmpArch>, ProfileError> {
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
        Ok(arches)
    }
}

/// The syscall names of a block with where each is (`at.names[j]`): one of
/// `name` or `names`, never both, never none.
fn block_names<'a>(
    b: &'a SyscallBlock,
    at: &str,
) -> Result<Vec<(String, &'a String)>, ProfileError> {
    Ok(match (&b.name, &b.names) {
        (Some(_), Some(n)) if !n.is_empty() => {
            return Err(err(at, "give either `name` or `names`, not both"))
        }
        (Some(n), _) => vec![(format!("{at}.name"), n)],
        (None, Some(n)) if !n.is_empty() => n
            .iter()
            .enumerate()
            .map(|(j, n)| (format!("{at}.names[{j}]"), n))
            .collect(),
        _ => return Err(err(at, "no syscall named: `names` is missing or empty")),
    })
}

/// The block's argument conditions as groups, one rule per group: all
/// ANDed in one, unless an index repeats, then each alone (runc).
fn condition_groups(b: &SyscallBlock, at: &str) -> Result<Vec<Vec<ScmpArgCompare>>, ProfileError> {
    let mut conds = Vec::new();
    let mut seen = [0u32; 6];
    for (k, a) in b.args.iter().flatten().enumerate() {
        conds.push(condition(a, &format!("{at}.args[{k}]"))?);
        seen[a.index as usize] += 1;
    }
    Ok(if seen.iter().any(|c| *c > 1) {
        conds.iter().map(|c| vec![*c]).collect()
    } else {
        vec![conds]
    })
}

/// The rules of one block for `env`: none when the block does not apply or
/// its action is the default (libseccomp refuses such a rule). The block is
/// checked in full either way.
fn block_rules(
    b: &SyscallBlock,
    at: &str,
    env: &Env,
    default: ScmpAction,
) -> Result<Vec<Rule>, ProfileError> {
    let names = block_names(b, at)?;
    let act = action(&b.action, b.errno_ret, &format!("{at}.action"))?;
    let groups = condition_groups(b, at)?;
    let mut resolved = Vec::new();
    for (where_, n) in names {
        let nr =
            ScmpSyscall::from_name(n).map_err(|_| err(where_, format!("unknown syscall {n:?}")))?;
        resolved.push((n.clone(), nr.as_raw_syscall()));
    }
    let inc = b.includes.as_ref().map_or(Filter::default(), clone_filter);
    let exc = b.excludes.as_ref().map_or(Filter::default(), clone_filter);
    if !applies(&inc, &exc, env, at)? || act == default {
        return Ok(Vec::new());
    }
    let mut rules = Vec::new();
    for (name, nr) in resolved {
        for g in &groups {
            rules.push(Rule {
                syscall: name.clone(),
                nr,
                action: act,
                conds: g.clone(),
                from: at.to_string(),
            });
        }
    }
    Ok(rules)
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
