//! The `ns.` rows beyond the seed: nsfs's ioctls, the capability
//! unshare(2) needs, and setns(2) through a pidfd.

use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::nsfs::{NsIoctl, PidfdSetns, UnshareNoCap, PIDFD_TYPES, UNSHARE_FLAGS};
use crate::namespaces;
use crate::process::{run_ok, Spawned};
use crate::{broken, check, check_eq};
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

/// NS_GET_NSTYPE of each namespace link, and of a file that is none.
fn judge_nstype(k: &NsIoctl) -> Outcome {
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
    Ok(())
}

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
    judge_nstype(&k)?;
    let want = serde_json::json!({"user_parent": "host-user", "pid_parent": "host-pid",
                                  "uts_owner": "child-user", "pid_owner": "child-user"});
    check_eq!(
        cli,
        want,
        "lsns PNS/ONS of `unshare -U --uts --pid` run by uid 100000"
    );
    Ok(())
}

/// unshare(1)'s option for each flag, and whether the kernel has the type.
fn flag_present(name: &str) -> bool {
    let kind = if name == "mount" { "mnt" } else { name };
    std::path::Path::new(&format!("/proc/self/ns/{kind}")).exists()
}

/// The CLI twin: `unshare --FLAG true` (and `-U --FLAG`), `nsenter --net=`
/// into the suite netns, as uid 65534 through setpriv or as real root.
fn unshare_cli(ctx: &Ctx, v: Variant, netns: &str) -> anyhow::Result<UnshareNoCap> {
    // One shell (dropped to 65534 by setpriv, or real root) tries them all.
    let flags: Vec<&str> = UNSHARE_FLAGS.iter().map(|(n, _)| *n).collect();
    let script = format!(
        "try() {{ if e=$(\"$@\" 2>&1); then echo ok; else case $e in *'Operation not permitted'*) echo EPERM;; *) echo \"$e\" | head -1;; esac; fi; }}\n\
         for f in {}; do echo \"alone_$f=$(try unshare --$f true)\"; echo \"user_$f=$(try unshare -U --$f true)\"; done\n\
         echo \"setns=$(try nsenter --net={netns} true)\"",
        flags.join(" ")
    );
    let mut c = ctx.cmd(if v.isolated() { "setpriv" } else { "env" });
    if v.isolated() {
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    }
    let out = crate::experiments::escape::kv_lines(&run_ok(c.args(["sh", "-c", &script]))?);
    let pick = |prefix: &str| -> std::collections::BTreeMap<String, String> {
        flags
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    out.get(&format!("{prefix}_{f}"))
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    };
    Ok(UnshareNoCap {
        as_who: if v.isolated() { "uid 65534" } else { "root" }.into(),
        alone: pick("alone"),
        with_user: pick("user"),
        setns: out.get("setns").cloned().unwrap_or_default(),
    })
}

pub(super) fn unshare_needs_cap(ctx: &mut Ctx, v: Variant) -> Outcome {
    let ns = crate::netns::Netns::add(ctx, "nocap")?;
    let path = ns.path().to_string_lossy().into_owned();
    let mut k = ctx.helper();
    k.args(["unshare-nocap", &path]);
    if !v.isolated() {
        k.arg("--as-root");
    }
    let kernel: UnshareNoCap = serde_json::from_str(run_ok(&mut k)?.trim())?;
    let cli = unshare_cli(ctx, v, &path)?;
    ctx.observe("kernel", &kernel);
    ctx.observe("cli", &cli);
    for (layer, r) in [("unshare(2)", &kernel), ("unshare(1)", &cli)] {
        for (name, _) in UNSHARE_FLAGS.iter().filter(|(n, _)| flag_present(n)) {
            let got = r.alone.get(*name).map(String::as_str);
            check_eq!(got, Some("EPERM"), "{layer} --{name} as {}", r.as_who);
        }
        check_eq!(
            r.setns.as_str(),
            "EPERM",
            "{layer}: setns into a suite netns as {}",
            r.as_who
        );
    }
    for (layer, r) in [("unshare(2)", &kernel), ("unshare(1)", &cli)] {
        for (name, _) in UNSHARE_FLAGS.iter().filter(|(n, _)| flag_present(n)) {
            let got = r.with_user.get(*name).map(String::as_str);
            if got != Some("ok") {
                broken!(
                    "{layer} -U --{name} as {}: {got:?} (the user ns path must work)",
                    r.as_who
                );
            }
        }
    }
    Ok(())
}

/// The types nsenter joins, with its options, and their inodes afterwards.
fn nsenter_join(ctx: &Ctx, pid: i32) -> anyhow::Result<Vec<String>> {
    let script = "for k in uts ipc net mnt cgroup; do echo $k=$(readlink /proc/self/ns/$k); done";
    let out = run_ok(
        ctx.cmd("nsenter")
            .args(["-t", &pid.to_string(), "-u", "-i", "-n", "-m", "-C"])
            .args(["sh", "-c", script]),
    )?;
    let target = namespaces::inodes(&pid.to_string());
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, v)| {
            target
                .get(*k)
                .is_some_and(|i| namespaces::parse_ns_link(v).map(|x| x.1) == Some(*i))
        })
        .map(|(k, _)| k.to_string())
        .collect())
}

pub(super) fn pidfd_setns(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (_target, pid) = crate::experiments::pid::start_inside(
        ctx,
        &["--ns", "uts,ipc,net,mnt,cgroup"],
        &["sleep", "60"],
    )?;
    let p = pid.to_string();
    let k: PidfdSetns =
        serde_json::from_str(run_ok(ctx.helper().args(["pidfd-setns", &p]))?.trim())?;
    let per_type: PidfdSetns =
        serde_json::from_str(run_ok(ctx.helper().args(["pidfd-setns", &p, "--per-type"]))?.trim())?;
    let cli = nsenter_join(ctx, pid)?;
    ctx.observe("pidfd", &k);
    ctx.observe("per_type", &per_type);
    ctx.observe("nsenter_equal_after", &cli);
    if k.join == "EINVAL" && k.flags_zero == "EINVAL" && k.equal_after.is_empty() {
        return Err(crate::experiment::Problem::Unmet(
            "setns(2) takes no pidfd: kernel older than 5.8".into(),
        ));
    }
    let all: Vec<String> = PIDFD_TYPES.iter().map(|(t, _)| t.to_string()).collect();
    check_eq!(
        k.join.as_str(),
        "ok",
        "setns(pidfd, NEWUTS|NEWIPC|NEWNET|NEWNS|NEWCGROUP)"
    );
    check_eq!(
        k.equal_after,
        all,
        "types equal to the target's after the pidfd setns"
    );
    check_eq!(
        k.exited.as_str(),
        "ESRCH",
        "setns of an exited child's pidfd"
    );
    check!(
        k.exited_changed_nothing,
        "the failed setns of an exited child's pidfd changed a namespace"
    );
    check_eq!(k.flags_zero.as_str(), "EINVAL", "setns(pidfd, 0)");
    check_eq!(
        k.from_other_userns.as_str(),
        "EPERM",
        "setns(pidfd, NEWUTS) from a new user ns of uid 100000"
    );
    // One nsfd per type (the helper, and nsenter(1)) ends in the same state.
    check_eq!(per_type.join.as_str(), "ok", "setns of one nsfd per type");
    check_eq!(
        per_type.equal_after,
        all,
        "types equal after one setns per type"
    );
    check_eq!(
        cli,
        all,
        "types equal to the target's under nsenter -t -u -i -n -m -C"
    );
    Ok(())
}
