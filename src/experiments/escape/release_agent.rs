//! esc.release-agent-denied (CVE-2022-0492): the cgroup v1 release_agent
//! stays out of reach of root in a user namespace, at the kernel layer (the
//! helper's syscalls) and at the CLI layer (mount(8), dd(1)).

use super::{kv_lines, last_json, open_dir, UNPRIV_S};
use crate::experiment::{read, Ctx, Outcome, Problem, Variant};
use crate::helper::escape::V1_TRY_ENV;
use crate::helper::helper_path;
use crate::process::run_ok;
use crate::{broken, check, check_eq};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Why the host is safe in this row, whatever the kernel does:
/// - the only hierarchies ever written are the suite's own named ones
///   (`none,name=isoc-…`: no controller, no process, no child cgroup), and
///   only after statfs and mountinfo show that very hierarchy on the path;
/// - `notify_on_release` is never set and no child cgroup exists, so the
///   kernel has nothing to release and never calls the agent;
/// - every write is `/bin/true`, read back, then cleared;
/// - the exploit's own choice (`memory`, `rdma`: host-shared hierarchies)
///   is only mounted, in the row's private mount ns, unmounted at once and
///   never opened;
/// - all mounts live in a private mount ns that dies with the row's child.
pub(super) fn release_agent_denied(ctx: &mut Ctx, v: Variant) -> Outcome {
    if !has_cgroup_v1_fs(&read("/proc/filesystems")?) {
        return Err(Problem::Unmet(
            "needs a kernel with cgroup v1 (CONFIG_CGROUP_V1 / no cgroup_no_v1=all): no `cgroup` in /proc/filesystems".into(),
        ));
    }
    let dir = open_dir(ctx, "ra")?;
    for d in ["own", "try", "exploit"] {
        open_dir(ctx, &format!("ra/{d}"))?;
    }
    // Named hierarchies: `isoc-<run>-<n>-<role><k>` fits the kernel's
    // 64-byte limit for a hierarchy name and uses only allowed characters.
    let own = ctx.name("own");
    let tried = ctx.name("try");
    let kernel = release_agent_kernel(ctx, v, &dir, &own, &tried)?;
    let cli = release_agent_cli(ctx, v, &dir, &own, &tried)?;
    // Whether a user+cgroup ns may mount an existing v1 hierarchy as the
    // exploit did (rdma, memory) depends on what else has it mounted at that
    // moment (6.12 guest: EPERM in one run, ok in the next): a measurement.
    // Which gate held for the suite's own named hierarchy is the fact.
    let (mut k_obs, mut c_obs) = (kernel.clone(), cli.clone());
    for key in ["rdma_mount", "memory_mount"] {
        if let Some(v) = k_obs.as_object_mut().and_then(|m| m.remove(key)) {
            ctx.measure(&format!("kernel.{key}"), v);
        }
        if let Some(v) = c_obs.remove(key) {
            ctx.measure(&format!("cli.{key}"), v);
        }
    }
    ctx.observe("kernel", &k_obs);
    ctx.observe("cli", &c_obs);
    if kernel["own_mount"] != "ok" || cli.get("own_mount").map(String::as_str) != Some("ok") {
        return Err(Problem::Unmet(format!(
            "the kernel refuses even real root a named cgroup v1 hierarchy (kernel {}, mount(8) {:?}): cgroup v1 is not usable here",
            kernel["own_mount"],
            cli.get("own_mount")
        )));
    }
    check_release_agent(ctx, &kernel, &cli)
}

/// Which of the exploit's v1 controllers (`memory`, `rdma`) the attempts
/// may mount, comma-separated: none that cgroup2 holds. As real root (the
/// control) a v1 mount of a controller no v2 group uses at that moment
/// takes it off the v2 root (6.12 guest: the v2 memory rows then came out
/// ignored), a change to the host's cgroups no row may make.
fn v1_tryable() -> String {
    let v2 = &crate::host::HostFacts::get().cgroup.v2;
    ["memory", "rdma"]
        .into_iter()
        .filter(|c| !v2.iter().any(|x| x == c))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kernel layer: `helper unshare --ns mnt` (a private mount ns as real root)
/// runs `esc-ra-own`, which mounts the suite's hierarchy and then runs the
/// attempt `esc-ra-try` either as uid 0 of a new user+mnt+cgroup ns mapped
/// to 100000 (isolated) or as itself (control).
fn release_agent_kernel(
    ctx: &Ctx,
    v: Variant,
    dir: &Path,
    own: &str,
    tried: &str,
) -> anyhow::Result<Value> {
    let exe = helper_path();
    let d = dir.to_string_lossy();
    let mut c = ctx.helper();
    c.args(["unshare", "--ns", "mnt", "--"]).arg(&exe).args([
        "helper",
        "esc-ra-own",
        &d,
        own,
        "--",
    ]);
    if v.isolated() {
        c.arg(&exe)
            .args(["helper", "unshare", "--ns", "user,mnt,cgroup"])
            .args(["--map-root-to", UNPRIV_S, "--"]);
    }
    c.arg(&exe).args(["helper", "esc-ra-try", &d, tried, own]);
    let out = run_ok(c.env(V1_TRY_ENV, v1_tryable()))?;
    let tries = out.lines().find(|l| l.contains("\"named_mount\""));
    let mut j: Value = last_json(&out)?;
    if let Some(t) = tries.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        if let (Some(o), Some(t)) = (j.as_object_mut(), t.as_object()) {
            o.extend(t.clone());
        }
    }
    Ok(j)
}

/// The CLI layer's probe, run by `sh` as uid 0 of the user ns (or as real
/// root in the control): mount(8) and dd(1) report the kernel's errors.
const RA_TRY_SH: &str = r#"
D=$1; TRY=$2
if m=$(mount -t cgroup -o none,name=$TRY cgroup $D/try 2>&1); then
  echo named_mount=ok
  if [ "$(stat -f -c %t $D/try)" = 27e0eb ] && grep -q " $D/try .* - cgroup .*name=$TRY" /proc/self/mountinfo \
     && [ "$(cat $D/try/notify_on_release)" = 0 ] && [ -z "$(find $D/try -mindepth 1 -type d)" ]; then
    w=$(printf %s /bin/true | dd of=$D/try/release_agent status=none 2>&1) && echo named_write=ok || echo "named_write=${w##*: }"
    printf '\n' > $D/try/release_agent 2>/dev/null
  else
    echo named_write=not-attempted-unverified-mount
  fi
  umount $D/try
else
  echo "named_mount=$(echo "$m" | head -1)"
fi
for c in memory rdma; do
  case ",$ISOCHECK_RA_V1_TRY," in *",$c,"*) ;; *) echo "${c}_mount=on-cgroup2-not-tried"; continue ;; esac
  if m=$(mount -t cgroup -o $c cgroup $D/exploit 2>&1); then echo ${c}_mount=ok; umount $D/exploit; else echo "${c}_mount=$(echo "$m" | head -1)"; fi
done
w=$(printf %s /bin/true | dd of=$D/own/release_agent status=none 2>&1) && echo own_write=ok || echo "own_write=${w##*: }"
"#;

/// The CLI layer's setup, as real root in `unshare -m --propagation private`.
const RA_OWN_SH: &str = r#"
D=$1; OWN=$2; shift 2
mount -t cgroup -o none,name=$OWN cgroup $D/own 2>/dev/null || { echo own_mount=refused; exit 0; }
if [ "$(stat -f -c %t $D/own)" != 27e0eb ] || ! grep -q " $D/own .* - cgroup .*name=$OWN" /proc/self/mountinfo \
   || [ "$(cat $D/own/notify_on_release)" != 0 ] || [ -n "$(find $D/own -mindepth 1 -type d)" ]; then
  umount $D/own; echo own_mount=unverified; exit 0
fi
echo own_mount=ok
chown 100000:100000 $D/own/release_agent
"$@"
echo "own_after=$(cat $D/own/release_agent)"
printf '\n' > $D/own/release_agent
echo "own_cleared=$(cat $D/own/release_agent)"
umount $D/own
"#;

fn release_agent_cli(
    ctx: &Ctx,
    v: Variant,
    dir: &Path,
    own: &str,
    tried: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let try_sh = dir.join("try.sh");
    std::fs::write(&try_sh, RA_TRY_SH)?;
    let d = dir.to_string_lossy();
    let ts = try_sh.to_string_lossy();
    // The exploit's shape: an unprivileged user (100000) runs `unshare -UrmC`.
    let attempt: Vec<&str> = if v.isolated() {
        vec![
            "unshare",
            "--setuid",
            UNPRIV_S,
            "--setgid",
            UNPRIV_S,
            "unshare",
            "-UrmC",
            "--propagation",
            "private",
            "sh",
            &ts,
            &d,
            tried,
        ]
    } else {
        vec!["sh", &ts, &d, tried]
    };
    let out = run_ok(
        ctx.cmd("unshare")
            .env("LC_ALL", "C")
            .env(V1_TRY_ENV, v1_tryable())
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                RA_OWN_SH,
                "sh",
                &d,
                own,
            ])
            .args(&attempt),
    )?;
    Ok(kv_lines(&out))
}

fn check_release_agent(ctx: &mut Ctx, k: &Value, cli: &BTreeMap<String, String>) -> Outcome {
    let get = |key: &str| cli.get(key).cloned().unwrap_or_default();
    let kgate = gate(
        k["named_mount"].as_str().unwrap_or(""),
        k["named_write"].as_str().unwrap_or(""),
    );
    let cgate = gate(&get("named_mount"), &get("named_write"));
    ctx.observe("named_gate_kernel", kgate);
    ctx.observe("named_gate_cli", cgate);
    if kgate == "unverified" || cgate == "unverified" {
        broken!("a named v1 hierarchy mounted, but the path did not verifiably hold the suite's fresh hierarchy: its release_agent was not written");
    }
    check!(
        kgate != "none",
        "uid 0 of the user ns mounted a named v1 hierarchy and wrote its release_agent ({})",
        k["named_write"]
    );
    check!(
        cgate != "none",
        "mount(8) in `unshare -UrmC` mounted a named v1 hierarchy and dd wrote its release_agent ({})",
        get("named_write")
    );
    check_eq!(
        k["own_write"].as_str(),
        Some("EPERM"),
        "write(2) to the suite hierarchy's release_agent (chowned to the writer) from the user ns"
    );
    check_eq!(
        get("own_write"),
        "Operation not permitted",
        "dd to the suite hierarchy's release_agent from `unshare -UrmC`"
    );
    check_eq!(
        k["own_cleared"].as_str(),
        Some(""),
        "release_agent after clearing (kernel layer)"
    );
    check_eq!(
        get("own_cleared"),
        "",
        "release_agent after clearing (CLI layer)"
    );
    check_eq!(
        k["own_after"].as_str(),
        Some(""),
        "release_agent after the attempt (kernel layer)"
    );
    check_eq!(
        get("own_after"),
        "",
        "release_agent after the attempt (CLI layer)"
    );
    Ok(())
}

/// Which gate held for a v1 hierarchy of the attacker's own: the mount,
/// or (where the kernel allows the mount) the release_agent write.
fn gate(mount: &str, write: &str) -> &'static str {
    match (mount, write) {
        ("ok", "EPERM") | ("ok", "Operation not permitted") => "write",
        ("ok", w) if w.starts_with("not-attempted") => "unverified",
        ("ok", _) => "none",
        _ => "mount",
    }
}

/// The kernel registers the cgroup v1 filesystem (`nodev\tcgroup`).
pub fn has_cgroup_v1_fs(filesystems: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("cgroup"))
}
