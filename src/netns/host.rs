//! The real host's network snapshot and the guard span around the section:
//! proof that no experiment touched the host's links, routes or firewall.

use super::{normalize_iptables_save, Iptables};
use anyhow::anyhow;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

// ---------------------------------------------------------------- host snapshot

/// The real host's network state, to prove that the experiments left it
/// alone: links, routes (v4 and v6), the firewall in every iptables flavour
/// present and the whole nf_tables ruleset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostNetSnapshot {
    /// Each source's text keyed by the command that printed it (`ip -o link`, `iptables-save`, `nft list ruleset`, ...), compared before and after.
    pub parts: BTreeMap<String, String>,
}

/// The namespace the host guard snapshots: the real host's (None), or, in
/// the harness's own tests, a namespace standing in for it, so that proving
/// the guard catches a new link never adds one to the real host.
static GUARDED_NS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Points the host guard at a stand-in namespace (tests only), or back.
pub fn guard_namespace(name: Option<String>) {
    *GUARDED_NS.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

/// A host command's stdout; on failure the error carries the command, its
/// status and its stderr (a broken row must say why: a missing module shows
/// there, not in the status).
fn output_of(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let shown = format!("{prog} {}", args.join(" "));
    let ns = GUARDED_NS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut c = match ns {
        Some(ns) => {
            let mut c = crate::process::command("ip");
            c.args(["netns", "exec", &ns, prog]);
            c
        }
        None => crate::process::command(prog),
    };
    let out = c
        .args(args)
        .output()
        .map_err(|e| anyhow!("host snapshot: `{}`: {e}", shown.trim()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(anyhow!(
        "host snapshot: `{}` failed ({}): {}",
        shown.trim(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn dockerd_running() -> bool {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "dockerd")
            })
        })
        .unwrap_or(false)
}

impl HostNetSnapshot {
    /// Takes the snapshot from this (the host's) namespace. Read only.
    pub fn take() -> anyhow::Result<HostNetSnapshot> {
        let mut parts = BTreeMap::new();
        let need =
            |k: &str, prog: &str, args: &[&str]| output_of(prog, args).map(|o| (k.to_string(), o));
        for (k, v) in [
            need("ip -o link", "ip", &["-o", "link"])?,
            need("ip route", "ip", &["route"])?,
            need("ip -6 route", "ip", &["-6", "route"])?,
        ] {
            parts.insert(k, v);
        }
        // Both flavours where both exist (the default is one of them, via
        // update-alternatives); the default alone otherwise.
        let both = [Iptables::Legacy, Iptables::Nft]
            .iter()
            .all(|f| Path::new(f.save_command()).exists());
        for f in [Iptables::Default, Iptables::Legacy, Iptables::Nft] {
            let wanted = if both {
                f != Iptables::Default
            } else {
                f == Iptables::Default
            };
            // Without iptables installed there is no iptables firewall the
            // suite could touch: say so instead of breaking every net row.
            if wanted && crate::host::which(f.save_command()).is_none() {
                parts.insert(f.save_command().to_string(), "(not installed)".into());
            } else if wanted {
                let save = output_of(f.save_command(), &[])?;
                parts.insert(f.save_command().to_string(), normalize_iptables_save(&save));
            }
        }
        if crate::host::which("nft").is_some() {
            let rs = output_of("nft", &["list", "ruleset"])?;
            parts.insert("nft list ruleset".into(), rs);
        }
        // Docker's bridge and its containers' veths live in the host's
        // namespace: while a daemon runs (another section's experiments),
        // their lines may legitimately come and go.
        if dockerd_running() {
            parts.insert("dockerd".into(), "running".into());
        }
        Ok(HostNetSnapshot { parts })
    }

    /// Lines that differ, as `part: -line` / `part: +line`. Empty when equal.
    pub fn diff(&self, after: &HostNetSnapshot) -> Vec<String> {
        // A Docker engine runs, or ran (its bridge stays after it stops: a
        // daemon started and stopped by another section between the two
        // snapshots). The suite's own links never carry Docker's names.
        let has_bridge = |s: &HostNetSnapshot| {
            s.parts.get("ip -o link").is_some_and(|l| {
                l.lines().any(|l| {
                    mentions_dev(l, "docker0")
                        || l.split(": ")
                            .nth(1)
                            .is_some_and(|n| n.starts_with("docker-"))
                })
            })
        };
        let docker = [self, after]
            .iter()
            .any(|s| s.parts.contains_key("dockerd") || has_bridge(s));
        let foreign = if docker {
            docker_link_names(self)
                .union(&docker_link_names(after))
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        diff_parts(&self.parts, &after.parts, &|line| {
            foreign.iter().any(|n| mentions_dev(line, n)) || via_vanished_link(line)
        })
    }
}

/// Experiments that overlap in time share one pair of host snapshots: the
/// first to start takes the "before", the last to finish the "after" and
/// compares. Nothing of the host may change while any of them runs, so the
/// comparison covers them all, at a fraction of the forks of one pair per
/// experiment (with one experiment at a time, e.g. under nextest, every
/// experiment is its own span).
struct Span {
    active: usize,
    before: Option<HostNetSnapshot>,
}

static SPAN: std::sync::Mutex<Span> = std::sync::Mutex::new(Span {
    active: 0,
    before: None,
});

/// Joins (or opens) the span of experiments guarded by host snapshots.
pub fn host_span_enter() -> anyhow::Result<()> {
    let mut s = SPAN.lock().unwrap_or_else(|e| e.into_inner());
    if s.active == 0 {
        s.before = Some(HostNetSnapshot::take()?);
    }
    s.active += 1;
    Ok(())
}

/// Leaves the span; the last one out compares and gets the difference
/// (empty when the host is unchanged). `None`: others still run.
pub fn host_span_leave() -> anyhow::Result<Option<Vec<String>>> {
    let mut s = SPAN.lock().unwrap_or_else(|e| e.into_inner());
    s.active = s.active.saturating_sub(1);
    if s.active > 0 {
        return Ok(None);
    }
    let before = s
        .before
        .take()
        .ok_or_else(|| anyhow!("host span without a snapshot"))?;
    // Taken under the lock: a new span cannot start before this one ends.
    let after = HostNetSnapshot::take()?;
    Ok(Some(before.diff(&after)))
}

/// `docker0` and the bridges of `ci/docker-engine.sh --release` engines
/// (`docker-<release>-<runtime>`), the links enslaved to them, and links
/// named as Docker names a container's veth ends (`veth` + 7 hex digits: a
/// pair is created in the host's namespace before one end is enslaved and
/// the other moved).
fn docker_link_names(s: &HostNetSnapshot) -> BTreeSet<String> {
    let mut v = BTreeSet::from(["docker0".to_string()]);
    let bridge = |n: &str| n == "docker0" || n.starts_with("docker-");
    let links = s.parts.get("ip -o link").map(String::as_str).unwrap_or("");
    for l in links.lines() {
        let Some(name) = l.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let docker_veth = name
            .strip_prefix("veth")
            .is_some_and(|h| h.len() == 7 && h.chars().all(|c| c.is_ascii_hexdigit()));
        let enslaved = l
            .split_once(" master ")
            .is_some_and(|(_, m)| bridge(m.split_whitespace().next().unwrap_or("")));
        if docker_veth || bridge(name) || enslaved {
            v.insert(name.to_string());
        }
    }
    v
}

/// A route printed with `dev ifN`: iproute2 names a device by its index
/// only when the link no longer exists as it dumps the routes (seen: a
/// concurrent run's container veth, removed mid-dump). A link already gone is
/// no lasting change of the host; one that stays is seen by its name.
fn via_vanished_link(line: &str) -> bool {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().is_some_and(|d| {
                d.strip_prefix("if")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            });
        }
    }
    false
}

fn mentions_dev(line: &str, dev: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || c == ':' || c == '@')
        .any(|w| w == dev)
}

/// The set difference of lines per part; `ignore` drops lines of foreign owners.
pub fn diff_parts(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    ignore: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for k in keys.into_iter().filter(|k| k.as_str() != "dockerd") {
        let b = before.get(k).map(String::as_str).unwrap_or("");
        let a = after.get(k).map(String::as_str).unwrap_or("");
        if a == b {
            continue;
        }
        let bl: Vec<&str> = b.lines().filter(|l| !ignore(l)).collect();
        let al: Vec<&str> = a.lines().filter(|l| !ignore(l)).collect();
        if bl == al {
            continue;
        }
        out.extend(
            bl.iter()
                .filter(|l| !al.contains(l))
                .map(|l| format!("{k}: -{l}")),
        );
        out.extend(
            al.iter()
                .filter(|l| !bl.contains(l))
                .map(|l| format!("{k}: +{l}")),
        );
        if out.is_empty() {
            out.push(format!("{k}: lines reordered"));
        }
    }
    out
}
