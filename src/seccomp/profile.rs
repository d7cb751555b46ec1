//! Docker's seccomp profile format, as JSON: the types serde reads and the
//! error that names where a profile is wrong.

use serde::Deserialize;
use std::fmt;

/// A Docker seccomp profile as JSON; unknown fields are refused so a typo is never silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// `SCMP_ACT_*` for syscalls no block matches; empty (missing) is an error at compile.
    #[serde(default)]
    pub default_action: String,
    /// The errno for a default action of `SCMP_ACT_ERRNO`; None means the action's default.
    pub default_errno_ret: Option<u32>,
    /// The filter's architectures (`SCMP_ARCH_*`); exclusive with `arch_map`.
    pub architectures: Option<Vec<String>>,
    /// Per-native-architecture lists, of which only the native entry is used.
    pub arch_map: Option<Vec<ArchMap>>,
    /// The rule blocks, in order.
    pub syscalls: Option<Vec<SyscallBlock>>,
    /// Accepted for Docker compatibility but unused: this harness runs no notify listener.
    pub listener_path: Option<String>,
    /// Accepted for Docker compatibility but unused, as `listener_path`.
    pub listener_metadata: Option<String>,
    /// Accepted for Docker compatibility (`SECCOMP_FILTER_FLAG_*`) but not applied.
    pub flags: Option<Vec<String>>,
}

/// One `archMap` entry: a native architecture and the ones its filter also covers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture this entry applies to (`SCMP_ARCH_*`).
    pub architecture: String,
    /// Further architectures added to the filter when this entry is native (e.g. x86 on x86_64).
    pub sub_architectures: Option<Vec<String>>,
}

/// One `syscalls` entry: names, an action, and the conditions it applies under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyscallBlock {
    /// A single syscall name (the older form); exclusive with `names`.
    pub name: Option<String>,
    /// The syscalls this block's action applies to.
    pub names: Option<Vec<String>>,
    /// `SCMP_ACT_*` for these syscalls.
    pub action: String,
    /// The errno for an action of `SCMP_ACT_ERRNO`; None means the action's default.
    pub errno_ret: Option<u32>,
    /// Argument comparisons, ANDed unless an index repeats (then one rule each, as runc does).
    pub args: Option<Vec<Arg>>,
    /// Free text for the reader; ignored.
    pub comment: Option<String>,
    /// Conditions the host must meet for the block to apply (caps, arches, kernel).
    #[serde(default)]
    pub includes: Option<Filter>,
    /// Conditions under which the block is skipped.
    #[serde(default)]
    pub excludes: Option<Filter>,
}

/// A block's host condition, as `includes` or `excludes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_*`): includes needs all, excludes skips on any.
    pub caps: Option<Vec<String>>,
    /// Architectures in Docker's spelling (`amd64`), compared with `Env::arch`.
    pub arches: Option<Vec<String>>,
    /// A kernel version (`4.8`) compared with the running kernel.
    pub min_kernel: Option<String>,
}

/// One argument comparison of a block, as libseccomp's `scmp_arg_cmp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    /// The syscall argument's position, 0 to 5.
    pub index: u32,
    /// The value compared with the argument (the mask for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second operand: the masked value for `SCMP_CMP_MASKED_EQ`, else unused (0).
    #[serde(default)]
    pub value_two: u64,
    /// The comparison, `SCMP_CMP_*`.
    pub op: String,
}

/// A profile that cannot be applied, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// `line 12 column 4` for JSON errors, else the field path.
    pub at: String,
    /// What is wrong, for the user to fix.
    pub msg: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.msg)
    }
}

impl std::error::Error for ProfileError {}

/// A [`ProfileError`] at `at`: every error names where it is.
pub(super) fn err(at: impl Into<String>, msg: impl Into<String>) -> ProfileError {
    ProfileError {
        at: at.into(),
        msg: msg.into(),
    }
}

/// Reads a profile's JSON; an error names the line and column, so a broken profile is fixable.
pub fn parse(text: &str) -> Result<Profile, ProfileError> {
    serde_json::from_str(text).map_err(|e| {
        err(
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })
}
