//! Docker's seccomp profile format, as JSON: the types serde reads and the
//! error that names where a profile is wrong.

use serde::Deserialize;
use std::fmt;

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

/// A [`ProfileError`] at `at`: every error names where it is.
pub(super) fn err(at: impl Into<String>, msg: impl Into<String>) -> ProfileError {
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
