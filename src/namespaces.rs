//! Namespace identities and the `lsns` view of them.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Every namespace type `/proc/<pid>/ns` shows and `lsns -t` accepts.
pub const TYPES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// Parses a namespace link target, e.g. `pid:[4026531836]` -> ("pid", 4026531836).
pub fn parse_ns_link(s: &str) -> Option<(&str, u64)> {
    let (kind, rest) = s.split_once(":[")?;
    let ino = rest.strip_suffix(']')?.parse().ok()?;
    Some((kind, ino))
}

/// The inode of one namespace of a process. `who` is a pid, `self` or
/// `thread-self` (the test thread's own namespaces differ from the main
/// thread's once it unshares: see engineering facts).
pub fn inode(who: &str, kind: &str) -> std::io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/{who}/ns/{kind}"))?;
    let s = link.to_string_lossy();
    parse_ns_link(&s)
        .map(|(_, ino)| ino)
        .ok_or_else(|| std::io::Error::other(format!("unexpected ns link {s}")))
}

/// All namespace inodes of a process (types the kernel lacks are left out).
pub fn inodes(who: &str) -> BTreeMap<String, u64> {
    TYPES
        .iter()
        .filter_map(|t| inode(who, t).ok().map(|i| (t.to_string(), i)))
        .collect()
}

/// One row of `lsns -J`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsnsRow {
    /// The namespace's inode number, its identity.
    pub ns: u64,
    /// The type as lsns prints it: `net`, `pid`, `mnt`, ...
    pub kind: String,
    /// How many processes are in it.
    pub nprocs: u64,
    /// The lowest pid in it, as lsns reports.
    pub pid: i64,
}

#[derive(Deserialize)]
struct LsnsJson {
    namespaces: Vec<BTreeMap<String, serde_json::Value>>,
}

fn num(v: Option<&serde_json::Value>) -> Option<i64> {
    match v? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses `lsns -J -o NS,TYPE,NPROCS,PID`. util-linux prints the numbers as
/// JSON numbers in newer releases and as strings in older ones; both parse.
pub fn parse_lsns_json(text: &str) -> Result<Vec<LsnsRow>, String> {
    let j: LsnsJson = serde_json::from_str(text).map_err(|e| format!("lsns -J output: {e}"))?;
    j.namespaces
        .iter()
        .map(|m| {
            Ok(LsnsRow {
                ns: num(m.get("ns")).ok_or("lsns row without ns")? as u64,
                kind: m
                    .get("type")
                    .and_then(|v| v.as_str())
                    .ok_or("lsns row without type")?
                    .to_string(),
                nprocs: num(m.get("nprocs")).ok_or("lsns row without nprocs")? as u64,
                pid: num(m.get("pid")).ok_or("lsns row without pid")?,
            })
        })
        .collect()
}

/// Runs `lsns -J -t KIND` and parses it. lsns walks /proc and can fail
/// (exit 1, nothing on stderr) when a process exits under it mid-walk; with
/// experiments starting and stopping processes in parallel that happens, so
/// a failed walk is retried a few times before it counts.
pub fn lsns(kind: &str) -> anyhow::Result<Vec<LsnsRow>> {
    let mut last = String::new();
    for _ in 0..5 {
        let out = crate::process::command("lsns")
            .args(["-J", "-t", kind, "-o", "NS,TYPE,NPROCS,PID"])
            .output()?;
        if out.status.success() {
            return parse_lsns_json(&String::from_utf8_lossy(&out.stdout))
                .map_err(anyhow::Error::msg);
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    anyhow::bail!("lsns -t {kind} failed 5 times: {last}")
}

/// Host pids whose `kind` namespace is `ino`, sorted (the /proc view of
/// what `lsns` counts as NPROCS).
pub fn pids_in_ns(kind: &str, ino: u64) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| inode(&p.to_string(), kind).ok() == Some(ino))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Numeric entries of a /proc listing, sorted.
pub fn pids_in(listing: &[String]) -> Vec<i32> {
    let mut v: Vec<i32> = listing.iter().filter_map(|n| n.parse().ok()).collect();
    v.sort();
    v
}

/// Reads `NSpid:` from a /proc status text: the pid in each nested namespace,
/// outermost first.
pub fn parse_nspid(status: &str) -> Option<Vec<i32>> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|r| {
            r.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
}

/// The namespaces the run started in (`mnt:4026531841,net:…`), recorded by
/// the harness and passed to every command it starts.
pub const ENV_HOST_NS: &str = "ISOCHECK_HOST_NS";

/// The value of `ENV_HOST_NS` for this process's namespaces (the harness's:
/// `/proc/self/ns`, since `/proc/1/ns` is EPERM on some hosts).
pub fn host_ns_env() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        ["mnt", "net", "uts", "ipc"]
            .iter()
            .filter_map(|k| Some(format!("{k}:{}", inode("self", k).ok()?)))
            .collect::<Vec<_>>()
            .join(",")
    })
}
