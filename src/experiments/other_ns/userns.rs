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
    // Only the creator's own path has these steps (the control has none).
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

pub(super) fn nested_map_ranges(ctx: &mut Ctx, v: Variant) -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::experiments::escape::open_dir(ctx, "nested-map")?;
    let file = dir.join("root-only");
    std::fs::write(&file, "root only\n")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700))?;
    let f = file.to_string_lossy().into_owned();
    let mut kernel = Vec::new();
    let mut cli = BTreeMap::new();
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
    if v.isolated() {
        for n in [6, 1] {
            cli.insert(format!("extents_{n}"), nested_map_cli(ctx, &f, n)?);
        }
    } else {
        let r = run(ctx.cmd("cat").arg(&f))?;
        cli.insert(
            "real_root".into(),
            if r.success() {
                "ok".into()
            } else {
                r.stderr.trim().to_string()
            },
        );
    }
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
        crate::experiments::mnt::ns_guard(&["net"])
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

pub(super) fn caps_scoped_to_own_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
    use crate::helper::userns::NetCaps;
    let suite = crate::netns::Netns::add(ctx, "capsns")?;
    let exe = crate::helper::helper_path();
    let map = ["--map-root-to", "100000", "--"];
    // Its own user+net ns.
    let own_cli = kv_lines(&run_ok(ctx.cmd("setpriv").args(AS_UNPRIV).args([
        "unshare",
        "-Urn",
        "sh",
        "-c",
        &net_admin_script(),
    ]))?);
    let own_k: NetCaps = serde_json::from_str(
        run_ok(
            ctx.helper()
                .args(["unshare", "--ns", "user,net"])
                .args(map)
                .arg(&exe)
                .args(["helper", "net-caps"]),
        )?
        .trim(),
    )?;
    // The suite netns (owned by the init user ns): a new user ns alone, or
    // real root in the control.
    let (shared_cli, shared_k): (_, NetCaps) = if v.isolated() {
        let cli = run_ok(suite.enter("setpriv").args(AS_UNPRIV).args([
            "unshare",
            "-Ur",
            "sh",
            "-c",
            &net_admin_script(),
        ]))?;
        let k = run_ok(
            suite
                .enter(&exe)
                .args(["helper", "unshare", "--ns", "user"])
                .args(map)
                .arg(&exe)
                .args(["helper", "net-caps"]),
        )?;
        (kv_lines(&cli), serde_json::from_str(k.trim())?)
    } else {
        let cli = run_ok(suite.enter("sh").args(["-c", &net_admin_script()]))?;
        (
            kv_lines(&cli),
            serde_json::from_str(run_ok(&mut suite.helper("net-caps"))?.trim())?,
        )
    };
    let summary = |cli: &BTreeMap<String, String>, k: &NetCaps| {
        BTreeMap::from([
            ("ip_link_add_veth", net_admin_outcome(cli, "veth")),
            ("iptables_append", net_admin_outcome(cli, "iptables")),
            ("raw_socket", k.raw_socket.clone()),
            ("so_mark", k.so_mark.clone()),
        ])
    };
    let (own, shared) = (summary(&own_cli, &own_k), summary(&shared_cli, &shared_k));
    ctx.observe("own_user_and_net_ns", &own);
    ctx.observe(
        if v.isolated() {
            "new_user_ns_in_suite_netns"
        } else {
            "real_root_in_suite_netns"
        },
        &shared,
    );
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
