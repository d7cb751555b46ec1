//! The iptables flavours (legacy and nf_tables) and the normal form of
//! `iptables-save`, so rule sets can be compared across runs.

use crate::process::run_ok;
use serde::Serialize;
use std::path::Path;

// ---------------------------------------------------------------- iptables

/// `iptables-save` output without what changes on its own: the comment
/// lines (they carry timestamps) and the packet/byte counters of chains.
pub fn normalize_iptables_save(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let l = match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) if l.ends_with(']') => &l[..i],
            _ => l,
        };
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Which iptables binary: the host's default (`iptables`, whatever
/// update-alternatives points to) or an explicit flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Iptables {
    /// Whatever `iptables` on PATH is (update-alternatives decides).
    Default,
    /// The x_tables backend, `iptables-legacy`.
    Legacy,
    /// The nf_tables backend, `iptables-nft`.
    Nft,
}

impl Iptables {
    /// The binary to run for rules in this flavour.
    pub fn command(self) -> &'static str {
        match self {
            Iptables::Default => "iptables",
            Iptables::Legacy => "/usr/sbin/iptables-legacy",
            Iptables::Nft => "/usr/sbin/iptables-nft",
        }
    }

    /// The matching `-save` binary, for the host guard's firewall snapshot.
    pub fn save_command(self) -> &'static str {
        match self {
            Iptables::Default => "iptables-save",
            Iptables::Legacy => "/usr/sbin/iptables-legacy-save",
            Iptables::Nft => "/usr/sbin/iptables-nft-save",
        }
    }

    /// `iptables -V`, e.g. `iptables v1.8.9 (nf_tables)`.
    pub fn version(self) -> anyhow::Result<String> {
        Ok(run_ok(crate::process::command(self.command()).arg("-V"))?
            .trim()
            .to_string())
    }

    /// The flavours to exercise: the default one, then the other one when its
    /// binary exists (Debian ships both in the iptables package; the host's
    /// alternatives are never switched, the other binary is called by path).
    pub fn flavours() -> Vec<Iptables> {
        let mut v = vec![Iptables::Default];
        let default_is_nft = Iptables::Default
            .version()
            .map(|s| s.contains("nf_tables"))
            .unwrap_or(true);
        let other = if default_is_nft {
            Iptables::Legacy
        } else {
            Iptables::Nft
        };
        if Path::new(other.command()).exists() {
            v.push(other);
        }
        v
    }
}
