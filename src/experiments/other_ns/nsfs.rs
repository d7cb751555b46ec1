//! The `ns.` rows beyond the seed: nsfs's ioctls, the capability
//! unshare(2) needs, and setns(2) through a pidfd.

use crate::check_eq;
use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::nsfs::NsIoctl;
use crate::namespaces;
use crate::process::{run_ok, Spawned};
use serde::Deserialize;

/// One namespace of `lsns -J -o NS,TYPE,PNS,ONS`: lsns fills PNS and ONS
/// with NS_GET_PARENT and NS_GET_USERNS, the CLI twin of the ioctls.
#[derive(Debug, Deserialize)]
pub struct LsnsRel {
    /// The namespace's inode.
    pub ns: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its parent's inode (0: none, or not a hierarchical type).
    pub pns: u64,
    /// Its owning user namespace's inode.
    pub ons: u64,
}

#[derive(Deserialize)]
struct LsnsRels {
    namespaces: Vec<LsnsRel>,
}

/// The first process under `parent` (itself included) whose comm is `comm`.
pub fn find_comm(parent: i32, comm: &str) -> anyhow::Result<i32> {
    let is =
        |p: i32| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm);
    let mut found = None;
    crate::process::wait_until(std::time::Duration::from_secs(5), || {
        let mut all = vec![parent];
        all.extend(crate::process::descendants(parent));
        found = all.into_iter().find(|p| is(*p));
        found.is_some()
    });
    found.ok_or_else(|| anyhow::anyhow!("no `{comm}` under {parent} after 5 s"))
}

/// The relations lsns reports for the CLI twin of `ns-ioctl`'s child, named
/// like the helper's reply.
fn cli_relations(ctx: &Ctx) -> anyhow::Result<serde_json::Value> {
    let mut s = Spawned::start(
        ctx.cmd("setpriv")
            .args(["--reuid", "100000", "--regid", "100000", "--clear-groups"])
            .args(["unshare", "-U", "--uts", "--pid", "--fork", "sleep", "60"]),
    )?
    .leader_first();
    let pid = find_comm(s.pid(), "sleep")?;
    let out = run_ok(
        ctx.cmd("lsns")
            .args(["-J", "-o", "NS,TYPE,PNS,ONS", "-p"])
            .arg(pid.to_string()),
    )?;
    s.kill();
    let rows: LsnsRels = serde_json::from_str(&out)?;
    let host = namespaces::inodes("self");
    let of = |k: &str| rows.namespaces.iter().find(|r| r.kind == k);
    let (user, uts, pid_ns) = (of("user"), of("uts"), of("pid"));
    let rel = |ino: Option<u64>| match ino {
        None => "missing".to_string(),
        Some(i) if Some(&i) == host.get("user") => "host-user".into(),
        Some(i) if Some(&i) == host.get("pid") => "host-pid".into(),
        Some(i) if Some(i) == user.map(|u| u.ns) => "child-user".into(),
        Some(0) => "none".into(),
        Some(_) => "other".into(),
    };
    Ok(serde_json::json!({
        "user_parent": rel(user.map(|u| u.pns)),
        "pid_parent": rel(pid_ns.map(|p| p.pns)),
        "uts_owner": rel(uts.map(|u| u.ons)),
        "pid_owner": rel(pid_ns.map(|p| p.ons)),
    }))
}

const NSTYPES: [(&str, &str); 8] = [
    ("cgroup", "CLONE_NEWCGROUP"),
    ("ipc", "CLONE_NEWIPC"),
    ("mnt", "CLONE_NEWNS"),
    ("net", "CLONE_NEWNET"),
    ("pid", "CLONE_NEWPID"),
    ("time", "CLONE_NEWTIME"),
    ("user", "CLONE_NEWUSER"),
    ("uts", "CLONE_NEWUTS"),
];

pub(super) fn ioctl_hierarchy(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let k: NsIoctl = serde_json::from_str(run_ok(ctx.helper().arg("ns-ioctl"))?.trim())?;
    let cli = cli_relations(ctx)?;
    ctx.observe("kernel", &k);
    ctx.observe("lsns", &cli);
    check_eq!(
        k.user_parent.as_str(),
        "mine",
        "NS_GET_PARENT of a new user ns"
    );
    check_eq!(
        k.pid_parent.as_str(),
        "mine",
        "NS_GET_PARENT of a new pid ns"
    );
    check_eq!(
        k.user_top.as_str(),
        "EPERM",
        "NS_GET_PARENT of the caller's own user ns (its top)"
    );
    check_eq!(
        k.pid_top.as_str(),
        "EPERM",
        "NS_GET_PARENT of the caller's own pid ns (its top)"
    );
    check_eq!(
        k.uts_owner.as_str(),
        "child-user",
        "NS_GET_USERNS of a uts ns made with a user ns"
    );
    check_eq!(
        k.my_uts_owner.as_str(),
        "mine",
        "NS_GET_USERNS of the caller's uts ns"
    );
    check_eq!(
        k.owner_uid,
        Some(100_000),
        "NS_GET_OWNER_UID of a user ns made by uid 100000"
    );
    for (kind, name) in NSTYPES {
        // A type the kernel lacks has no link to ask (ns.lsns-types reports it).
        let got = k.nstype.get(kind).map(String::as_str);
        if got != Some("ENOENT") {
            check_eq!(got, Some(name), "NS_GET_NSTYPE of /proc/self/ns/{kind}");
        }
    }
    check_eq!(
        k.non_ns_fd.as_str(),
        "ENOTTY",
        "NS_GET_NSTYPE of /proc/self/status"
    );
    let want = serde_json::json!({"user_parent": "host-user", "pid_parent": "host-pid",
                                  "uts_owner": "child-user", "pid_owner": "child-user"});
    check_eq!(
        cli,
        want,
        "lsns PNS/ONS of `unshare -U --uts --pid` run by uid 100000"
    );
    Ok(())
}
