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
        TYPES
            .iter()
            .filter_map(|k| Some(format!("{k}:{}", inode("self", k).ok()?)))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The inode of the run's own namespace of `kind`, the reference every
/// guard compares with: what the harness recorded (`ENV_HOST_NS`, passed to
/// every command it starts), else this process's own (it is the harness).
pub fn host_inode(kind: &str) -> Option<u64> {
    let recorded = std::env::var(ENV_HOST_NS).ok();
    ns_env_inode(recorded.as_deref().unwrap_or_else(|| host_ns_env()), kind)
}

/// The inode of `kind` in what the harness recorded in `ENV_HOST_NS`; None
/// when this process was not given a record.
pub fn recorded_host_inode(kind: &str) -> Option<u64> {
    ns_env_inode(&std::env::var(ENV_HOST_NS).ok()?, kind)
}

/// The inode of `kind` in an `ENV_HOST_NS` value (`mnt:4026531841,net:…`).
fn ns_env_inode(text: &str, kind: &str) -> Option<u64> {
    text.split(',')
        .filter_map(|kv| kv.split_once(':'))
        .find(|(k, _)| *k == kind)
        .and_then(|(_, i)| i.parse().ok())
}

/// A shell prefix for a CLI layer's `sh -c` script run under `unshare`:
/// it exits 125 ("isocheck: refusing: …") unless the shell's namespace of
/// each kind differs from the run's. Why: util-linux's `unshare` whose
/// unshare(2) silently did nothing (a seccomp filter faking success) would
/// otherwise run the seed's `hostname X` on the host itself.
pub fn sh_guard(kinds: &[&str]) -> String {
    kinds
        .iter()
        .map(|k| match host_inode(k) {
            Some(ino) => format!(
                "case \"$(readlink /proc/self/ns/{k})\" in \"{k}:[{ino}]\"|'') \
                 echo 'isocheck: refusing: still in the run'\\''s {k} namespace' >&2; exit 125;; esac; "
            ),
            None => format!(
                "echo 'isocheck: refusing: no record of the run'\\''s {k} namespace' >&2; exit 125; "
            ),
        })
        .collect()
}

/// Fails unless `path` (a `/proc/thread-self/ns/*` link) names another
/// namespace than `host`: the spawn then fails with
/// `process::REFUSED_ERRNO`. Allocation-free: it runs between fork and exec.
fn ensure_not_host(path: &std::ffi::CStr, host: Option<u64>) -> std::io::Result<()> {
    // SAFETY: stat(2) on a NUL-terminated path into a zeroed struct.
    let ino = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(path.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        st.st_ino
    };
    match host {
        Some(h) if h != ino => Ok(()),
        _ => Err(std::io::Error::from_raw_os_error(
            crate::process::REFUSED_ERRNO,
        )),
    }
}

/// Starts `cmd` in a mount namespace of its own, proven not to be the
/// run's: unshare(CLONE_NEWNS) between fork and exec, then its inode is
/// compared with the run's, and the spawn is refused when they are equal.
/// Why: a CLI whose own unshare(2) silently did nothing (`unshare
/// --mount-proc`, `unshare -m … sh -c 'mount …'`, `nsenter -m`) would
/// otherwise mount, or change `/`'s propagation, in the host's table. The
/// copy keeps the run's propagation, so a shared suite mount still
/// propagates back (mnt.propagation's subject).
pub fn private_mounts(cmd: &mut std::process::Command) {
    let host = host_inode("mnt");
    // SAFETY: unshare(2) and stat(2) are plain syscalls; nothing allocates.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            ensure_not_host(c"/proc/thread-self/ns/mnt", host)
        });
    }
}

/// After a `setns(CLONE_NEWNET)` in `pre_exec`: refuses the spawn unless
/// the thread really is in another network namespace than the run's (a
/// faked setns would run `ip link`/`iptables` on the host's own).
pub fn ensure_left_host_net(host_net: Option<u64>) -> std::io::Result<()> {
    ensure_not_host(c"/proc/thread-self/ns/net", host_net)
}
