//! The `user.` rows beyond the seed: where user namespaces broke before
//! (setgroups, nested maps, capabilities, file capabilities) and the
//! host's policy for unprivileged ones.

use super::nsfs::find_comm;
use crate::experiment::{Ctx, Outcome, Variant};
use crate::helper::userns::{NestedMap, SetgroupsDeny};
use crate::process::{run, run_ok, Spawned};
use crate::{broken, check_eq};
use std::collections::BTreeMap;

/// `key=value` lines of a shell probe.
fn kv_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// What uid 0 of the namespace sees of setgroups, from a shell.
const SETGROUPS_PROBE: &str = "echo setgroups=$(cat /proc/self/setgroups)\n\
    if e=$(setpriv --groups 0 true 2>&1); then echo call=ok; else echo \"call=${e##*: }\"; fi\n\
    if e=$(env echo allow 2>&1 > /proc/self/setgroups); then echo allow_back=ok; else echo \"allow_back=${e##*: }\"; fi";

/// The CLI twin: `unshare -r` run by uid 100000 (it writes `deny` before
/// its gid_map, as it must); in the control real root makes the user ns
/// with `unshare -U`, writes both maps from outside and enters it with
/// nsenter, setgroups left `allow`.
fn setgroups_cli(ctx: &Ctx, v: Variant) -> anyhow::Result<BTreeMap<String, String>> {
    if v.isolated() {
        let out = run_ok(
            ctx.cmd("setpriv")
                .args(["--reuid", "100000", "--regid", "100000", "--clear-groups"])
                .args(["unshare", "-r", "sh", "-c", SETGROUPS_PROBE]),
        )?;
        return Ok(kv_lines(&out));
    }
    let mut holder = Spawned::start(ctx.cmd("unshare").args(["-U", "sleep", "60"]))?;
    let pid = find_comm(holder.pid(), "sleep")?;
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 100000 1\n")?;
    }
    let out = run_ok(ctx.cmd("nsenter").args([
        "-t",
        &pid.to_string(),
        "-U",
        "sh",
        "-c",
        SETGROUPS_PROBE,
    ]))?;
    holder.kill();
    Ok(kv_lines(&out))
}

pub(super) fn setgroups_deny(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut c = ctx.helper();
    c.arg("setgroups-deny");
    if !v.isolated() {
        c.arg("--parent-writes");
    }
    let k: SetgroupsDeny = serde_json::from_str(run_ok(&mut c)?.trim())?;
    let cli = setgroups_cli(ctx, v)?;
    ctx.observe("kernel", &k);
    ctx.observe("cli", &cli);
    let get = |key: &str| cli.get(key).map(String::as_str);
    check_eq!(
        k.setgroups_call.as_str(),
        "EPERM",
        "setgroups(2) as uid 0 of the ns ({} wrote gid_map)",
        k.writer
    );
    check_eq!(
        get("call"),
        Some("Operation not permitted"),
        "`setpriv --groups 0` as uid 0 of the ns"
    );
    check_eq!(
        k.setgroups_file.as_str(),
        "deny",
        "/proc/self/setgroups once gid_map is written"
    );
    check_eq!(
        get("setgroups"),
        Some("deny"),
        "/proc/self/setgroups under the CLI"
    );
    check_eq!(
        k.write_allow_back.as_str(),
        "EPERM",
        "writing `allow` back to setgroups"
    );
    check_eq!(
        get("allow_back"),
        Some("Operation not permitted"),
        "`echo allow > /proc/self/setgroups`"
    );
    judge_creator_path(&k)
}

/// The creator's own steps before setgroups(2) (the control has none).
fn judge_creator_path(k: &SetgroupsDeny) -> Outcome {
    check_eq!(
        k.setgroups_at_start.as_str(),
        "allow",
        "/proc/self/setgroups of a new user ns"
    );
    check_eq!(
        k.gid_map_while_allow.as_str(),
        "EPERM",
        "the creator's gid_map write while setgroups is allow"
    );
    if k.write_deny != "ok" {
        broken!("writing deny to setgroups: {}", k.write_deny);
    }
    check_eq!(
        k.gid_map_after_deny.as_str(),
        "ok",
        "the creator's gid_map write after deny"
    );
    Ok(())
}

/// The CLI twin of `nested-map` with util-linux alone: `unshare -U` (maps
/// written by real root), a second `unshare -U` entered into it with
/// nsenter, whose maps its root writes from the outer ns with printf; then
/// `cat FILE` as the inner root.
fn nested_map_cli(ctx: &Ctx, file: &str, n: usize) -> anyhow::Result<String> {
    let mut outer = Spawned::start(ctx.cmd("unshare").args(["-U", "sleep", "60"]))?;
    let p1 = find_comm(outer.pid(), "sleep")?.to_string();
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{p1}/{map}"), "0 100000 1000\n")?;
    }
    let mut inner = Spawned::start(
        ctx.cmd("nsenter")
            .args(["-t", &p1, "-U", "unshare", "-U", "sleep", "60"]),
    )?;
    let p2 = find_comm(inner.pid(), "sleep")?.to_string();
    let map = crate::helper::userns::extents(n).replace('\n', "\\n");
    let script =
        format!("printf '{map}' > /proc/{p2}/uid_map && printf '{map}' > /proc/{p2}/gid_map");
    run_ok(
        ctx.cmd("nsenter")
            .args(["-t", &p1, "-U", "sh", "-c", &script]),
    )?;
    let r = run(ctx.cmd("nsenter").args(["-t", &p2, "-U", "cat", file]))?;
    inner.kill();
    outer.kill();
    Ok(if r.success() {
        "ok".into()
    } else if r.stderr.contains("Permission denied") {
        "EACCES".into()
    } else {
        r.stderr.trim().to_string()
    })
}

/// The CLI layer: both maps through util-linux, or in the control `cat`
/// as real root.
fn nested_cli_all(ctx: &Ctx, v: Variant, f: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut cli = BTreeMap::new();
    if v.isolated() {
        for n in [6, 1] {
            cli.insert(format!("extents_{n}"), nested_map_cli(ctx, f, n)?);
        }
    } else {
        let r = run(ctx.cmd("cat").arg(f))?;
        let got = if r.success() {
            "ok".into()
        } else {
            r.stderr.trim().to_string()
        };
        cli.insert("real_root".into(), got);
    }
    Ok(cli)
}

pub(super) fn nested_map_ranges(ctx: &mut Ctx, v: Variant) -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::experiments::escape::open_dir(ctx, "nested-map")?;
    let file = dir.join("root-only");
    std::fs::write(&file, "root only\n")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700))?;
    let f = file.to_string_lossy().into_owned();
    let mut kernel = Vec::new();
    let hows: &[&str] = if v.isolated() {
        &["6", "1"]
    } else {
        &["--as-root"]
    };
    for how in hows {
        let k: NestedMap =
            serde_json::from_str(run_ok(ctx.helper().args(["nested-map", &f, how]))?.trim())?;
        kernel.push(k);
    }
    let cli = nested_cli_all(ctx, v, &f)?;
    ctx.observe("kernel", &kernel);
    ctx.observe("cli", &cli);
    if let Some(k) = kernel
        .iter()
        .find(|k| !k.open.starts_with('E') && k.open != "ok")
    {
        broken!("the nested user namespaces were not set up: {}", k.open);
    }
    for k in &kernel {
        check_eq!(
            k.open.as_str(),
            "EACCES",
            "open of a root-only 0700 file as the inner root ({} extents)",
            k.extents
        );
        check_eq!(
            k.host_uids.get(1).map(String::as_str),
            Some("100000"),
            "the inner root's euid seen from the host ({} extents)",
            k.extents
        );
    }
    for (how, got) in &cli {
        check_eq!(got.as_str(), "EACCES", "cat of the root-only file ({how})");
    }
    Ok(())
}

/// A veth pair and an iptables rule (TEST-NET-2, in whatever netns the
/// script runs in; the guard refuses the host's).
fn net_admin_script() -> String {
    format!(
        "{}if e=$(ip link add isoc-a type veth peer name isoc-b 2>&1); then echo veth=ok; else echo \"veth=$e\"; fi\n\
         if e=$(iptables -w -A INPUT -s 198.51.100.7 -j DROP 2>&1); then echo iptables=ok; else echo \"iptables=$e\"; fi",
        crate::namespaces::sh_guard(&["net"])
    )
}

/// How a `net_admin_script` run went: "ok", or "EPERM" when the kernel
/// refused (each tool words it its own way).
fn net_admin_outcome(out: &BTreeMap<String, String>, key: &str) -> String {
    match out.get(key).map(String::as_str) {
        Some("ok") => "ok".into(),
        Some(e) if e.contains("Operation not permitted") || e.contains("Permission denied") => {
            "EPERM".into()
        }
        other => format!("{other:?}"),
    }
}

const AS_UNPRIV: [&str; 5] = ["--reuid", "100000", "--regid", "100000", "--clear-groups"];

type NetSteps = BTreeMap<&'static str, String>;

/// The four steps' outcomes: the script's two tools and the helper's two.
fn net_steps(cli: &BTreeMap<String, String>, k: &crate::helper::userns::NetCaps) -> NetSteps {
    BTreeMap::from([
        ("ip_link_add_veth", net_admin_outcome(cli, "veth")),
        ("iptables_append", net_admin_outcome(cli, "iptables")),
        ("raw_socket", k.raw_socket.clone()),
        ("so_mark", k.so_mark.clone()),
    ])
}

/// `helper unshare --ns NS --map-root-to 100000 -- helper net-caps` through `c`.
fn net_caps_in(
    c: &mut std::process::Command,
    ns: &str,
) -> anyhow::Result<crate::helper::userns::NetCaps> {
    let exe = crate::helper::helper_path();
    c.args(["unshare", "--ns", ns, "--map-root-to", "100000", "--"])
        .arg(&exe)
        .args(["helper", "net-caps"]);
    Ok(serde_json::from_str(run_ok(c)?.trim())?)
}

/// Uid 0 of its own user+net ns (mapped to 100000).
fn own_netns_steps(ctx: &Ctx) -> anyhow::Result<NetSteps> {
    let cli = run_ok(ctx.cmd("setpriv").args(AS_UNPRIV).args([
        "unshare",
        "-Urn",
        "sh",
        "-c",
        &net_admin_script(),
    ]))?;
    Ok(net_steps(
        &kv_lines(&cli),
        &net_caps_in(&mut ctx.helper(), "user,net")?,
    ))
}

/// In the suite netns (owned by the init user ns): a new user ns alone, or
/// real root in the control.
fn suite_netns_steps(v: Variant, suite: &crate::netns::Netns) -> anyhow::Result<NetSteps> {
    let exe = crate::helper::helper_path();
    if v.isolated() {
        let cli = run_ok(suite.enter("setpriv").args(AS_UNPRIV).args([
            "unshare",
            "-Ur",
            "sh",
            "-c",
            &net_admin_script(),
        ]))?;
        let k = net_caps_in(suite.enter(&exe).arg("helper"), "user")?;
        return Ok(net_steps(&kv_lines(&cli), &k));
    }
    let cli = run_ok(suite.enter("sh").args(["-c", &net_admin_script()]))?;
    let k = serde_json::from_str(run_ok(&mut suite.helper("net-caps"))?.trim())?;
    Ok(net_steps(&kv_lines(&cli), &k))
}

pub(super) fn caps_scoped_to_own_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let suite = crate::netns::Netns::add(ctx, "capsns")?;
    let own = own_netns_steps(ctx)?;
    let shared = suite_netns_steps(v, &suite)?;
    ctx.observe("own_user_and_net_ns", &own);
    let who = if v.isolated() {
        "new_user_ns_in_suite_netns"
    } else {
        "real_root_in_suite_netns"
    };
    ctx.observe(who, &shared);
    for (step, got) in &shared {
        check_eq!(
            got.as_str(),
            "EPERM",
            "{step} in a suite netns owned by the init user ns"
        );
    }
    for (step, got) in &own {
        if got != "ok" {
            broken!("{step} as uid 0 of its own user+net ns: {got} (the positive side must work)");
        }
    }
    Ok(())
}

/// The knobs distributions gate unprivileged user namespaces with, as
/// read (absent where the kernel lacks them).
fn userns_knobs() -> BTreeMap<&'static str, String> {
    [
        (
            "kernel.unprivileged_userns_clone",
            "/proc/sys/kernel/unprivileged_userns_clone",
        ),
        (
            "user.max_user_namespaces",
            "/proc/sys/user/max_user_namespaces",
        ),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
    ]
    .into_iter()
    .map(|(k, p)| {
        (
            k,
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "absent".into()),
        )
    })
    .collect()
}

/// The gate the knobs name, or None where they allow unprivileged userns.
pub fn declared_gate(knobs: &BTreeMap<&str, String>) -> Option<&'static str> {
    let is = |k: &str, v: &str| knobs.get(k).is_some_and(|x| x == v);
    if is("kernel.unprivileged_userns_clone", "0") {
        Some("kernel.unprivileged_userns_clone=0")
    } else if is("user.max_user_namespaces", "0") {
        Some("user.max_user_namespaces=0")
    } else if is("kernel.apparmor_restrict_unprivileged_userns", "1") {
        Some("kernel.apparmor_restrict_unprivileged_userns=1")
    } else {
        None
    }
}

/// The CLI twin: `unshare -Urm` (as uid 100000 through setpriv, or as real
/// root), CapEff and a tmpfs mount inside.
fn policy_cli(ctx: &Ctx, dir: &str, as_root: bool) -> anyhow::Result<BTreeMap<String, String>> {
    let script = format!(
        "{}echo cap_eff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)\n\
         if e=$(mount -t tmpfs -o size=1m isocheck {dir} 2>&1); then echo mount_tmpfs=ok; else echo \"mount_tmpfs=$e\"; fi",
        crate::namespaces::sh_guard(&["mnt"])
    );
    let mut c = ctx.cmd(if as_root { "env" } else { "setpriv" });
    if !as_root {
        c.args(AS_UNPRIV);
    }
    let r = run(c.args(["unshare", "-Urm", "sh", "-c", &script]))?;
    let mut out = kv_lines(&r.stdout);
    out.insert(
        "unshare".into(),
        if r.stdout.contains("cap_eff=") {
            "ok".into()
        } else {
            r.stderr.trim().to_string()
        },
    );
    Ok(out)
}

/// A full CapEff for this kernel (every capability up to cap_last_cap).
fn full_caps() -> anyhow::Result<String> {
    let last: u32 = crate::experiment::read("/proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()?;
    Ok(format!("{:016x}", (1u64 << (last + 1)) - 1))
}

pub(super) fn unprivileged_userns_policy(ctx: &mut Ctx, _v: Variant) -> Outcome {
    use crate::helper::userns::UsernsPolicy;
    let dir = crate::experiments::escape::open_dir(ctx, "policy")?;
    let d = dir.to_string_lossy().into_owned();
    let knobs = userns_knobs();
    let gate = declared_gate(&knobs);
    let full = full_caps()?;
    let kernel: UsernsPolicy =
        serde_json::from_str(run_ok(ctx.helper().args(["userns-policy", &d]))?.trim())?;
    let cli = policy_cli(ctx, &d, false)?;
    let root_k: UsernsPolicy = serde_json::from_str(
        run_ok(ctx.helper().args(["userns-policy", &d, "--as-root"]))?.trim(),
    )?;
    let root_cli = policy_cli(ctx, &d, true)?;
    // The namespace limit scales with the machine's memory: its raw value
    // is a measurement, whether it is zero the fact.
    ctx.measure("knobs", &knobs);
    let mut facts = knobs.clone();
    facts.entry("user.max_user_namespaces").and_modify(|v| {
        if v != "0" && v != "absent" {
            *v = "nonzero".into();
        }
    });
    ctx.observe("knobs", &facts);
    ctx.observe("declared_gate", gate);
    ctx.observe("kernel", &kernel);
    ctx.observe("cli", &cli);
    ctx.observe("real_root_kernel", &root_k);
    ctx.observe("real_root_cli", &root_cli);
    // Real root's baseline: the same steps must work, or nothing is measured.
    if root_k.mount_tmpfs != "ok" || root_cli.get("mount_tmpfs").map(String::as_str) != Some("ok") {
        broken!("real root's unshare -Urm + tmpfs failed: {root_k:?} / {root_cli:?}");
    }
    let k_allowed = kernel.mount_tmpfs == "ok" && kernel.cap_eff == full;
    let c_allowed = cli.get("mount_tmpfs").map(String::as_str) == Some("ok")
        && cli.get("cap_eff") == Some(&full);
    ctx.observe("allowed", json_pair(k_allowed, c_allowed));
    check_eq!(k_allowed, gate.is_none(), "uid 100000 got a full CapEff ({full}) and a tmpfs mount (helper), the knobs declaring {gate:?}");
    check_eq!(
        c_allowed,
        gate.is_none(),
        "the same under setpriv + unshare -Urm, the knobs declaring {gate:?}"
    );
    Ok(())
}

fn json_pair(kernel: bool, cli: bool) -> BTreeMap<&'static str, bool> {
    BTreeMap::from([("kernel", kernel), ("cli", cli)])
}

/// Bit 13 of a `CapEff:` hex value.
fn has_net_raw(status: &str) -> Option<bool> {
    let eff = crate::process::status_values(status, "CapEff")
        .first()
        .cloned()?;
    u64::from_str_radix(&eff, 16)
        .ok()
        .map(|e| e & (1 << 13) != 0)
}

type FcapEffects = (
    BTreeMap<&'static str, crate::helper::userns::FileCap>,
    BTreeMap<&'static str, Option<bool>>,
);

/// Each file's capability xattr read from the host (the holder's mount ns,
/// real root), and whether an exec of it by host uid 100000 has
/// CAP_NET_RAW: through setpriv (cli) and the helper (kernel).
fn fcap_effects(
    ctx: &Ctx,
    holder: &Spawned,
    cli_f: &str,
    k_f: &str,
) -> anyhow::Result<FcapEffects> {
    use crate::experiments::escape::{in_holder, op_in_holder};
    let mut xattr = BTreeMap::new();
    for (layer, f) in [("cli", cli_f), ("kernel", k_f)] {
        xattr.insert(layer, op_in_holder(ctx, holder, None, &["fcap-read", f])?);
    }
    let cli_exec = run_ok(
        in_holder(ctx, holder)
            .arg("setpriv")
            .args(AS_UNPRIV)
            .args([cli_f, "/proc/self/status"]),
    )?;
    let exe = crate::helper::helper_path();
    let k_exec = run_ok(in_holder(ctx, holder).arg(&exe).args([
        "helper",
        "esc-exec-as",
        "100000",
        "plain",
        k_f,
        "/proc/self/status",
    ]))?;
    let exec = BTreeMap::from([
        ("cli", has_net_raw(&cli_exec)),
        ("kernel", has_net_raw(&k_exec)),
    ]);
    Ok((xattr, exec))
}

/// Why the host is safe: both capability-carrying copies of `cat` live in
/// a tmpfs that only the holder's private mount ns has; they vanish with it.
pub(super) fn file_caps_namespaced(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::experiments::escape::{hold_mount_ns, in_holder, op_in_holder, open_dir};
    let t = open_dir(ctx, "fcaps")?.join("t");
    std::fs::create_dir_all(&t)?;
    let ts = t.to_string_lossy().into_owned();
    let cat = crate::host::which("cat").ok_or_else(|| anyhow::anyhow!("no cat on PATH"))?;
    let setup = format!(
        "{}mount -t tmpfs -o size=8m,mode=0755 {} {ts}\nfor f in cli k; do cp {} {ts}/$f-cat; chown 100000:100000 {ts}/$f-cat; done",
        crate::namespaces::sh_guard(&["mnt"]),
        ctx.tag,
        cat.display()
    );
    let holder = hold_mount_ns(ctx, &setup)?;
    let (cli_f, k_f) = (format!("{ts}/cli-cat"), format!("{ts}/k-cat"));
    let mut set = in_holder(ctx, &holder);
    if v.isolated() {
        set.arg("setpriv").args(AS_UNPRIV).args(["unshare", "-Ur"]);
    }
    run_ok(set.args(["setcap", "cap_net_raw+ep", &cli_f]))?;
    let ns: &[&str] = &["--ns", "user", "--map-root-to", "100000"];
    let _: BTreeMap<String, String> = op_in_holder(
        ctx,
        &holder,
        v.isolated().then_some(ns),
        &["fcap-set", &k_f],
    )?;
    let getcap = run_ok(in_holder(ctx, &holder).args(["getcap", "-n", &cli_f]))?.replace(&ts, "T");
    let (xattr, exec) = fcap_effects(ctx, &holder, &cli_f, &k_f)?;
    drop(holder);
    ctx.observe("getcap_from_host", getcap.trim());
    ctx.observe("xattr_from_host", &xattr);
    ctx.observe("exec_by_uid_100000_has_net_raw", &exec);
    for (layer, c) in &xattr {
        check_eq!(
            c.version,
            Some(3),
            "security.capability revision ({layer} setcap), read from the host"
        );
        check_eq!(c.rootid, Some(100_000), "its rootid ({layer})");
    }
    for (layer, e) in &exec {
        check_eq!(
            *e,
            Some(false),
            "CAP_NET_RAW in CapEff of the file exec'd by host uid 100000 ({layer})"
        );
    }
    if xattr.values().any(|c| !c.net_raw) {
        broken!("the written capability set lacks cap_net_raw: {xattr:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's, the generic and Ubuntu's knobs name their gate; absent or
    /// permissive ones declare none.
    #[test]
    fn the_knobs_name_the_gate() {
        let k = |c: &str, m: &str, a: &str| {
            BTreeMap::from([
                ("kernel.unprivileged_userns_clone", c.to_string()),
                ("user.max_user_namespaces", m.to_string()),
                (
                    "kernel.apparmor_restrict_unprivileged_userns",
                    a.to_string(),
                ),
            ])
        };
        assert_eq!(declared_gate(&k("absent", "96369", "absent")), None);
        assert_eq!(declared_gate(&k("1", "5", "0")), None);
        assert!(declared_gate(&k("0", "5", "absent"))
            .unwrap()
            .contains("clone=0"));
        assert!(declared_gate(&k("1", "0", "absent"))
            .unwrap()
            .contains("max_user"));
        assert!(declared_gate(&k("absent", "5", "1"))
            .unwrap()
            .contains("apparmor"));
    }
}
