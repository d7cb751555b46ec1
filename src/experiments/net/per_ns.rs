//! What each network namespace has of its own beyond links and routes:
//! its net sysctls (runtime-tools linux_sysctl, youki sysctl), and its
//! sysfs class/net and rtnetlink events (LTP netns_sysfs, netns_netlink).

use super::*;
use crate::helper::netlink::LinkEvents;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

// ---------------------------------------------------------------------------
// net.sysctl-per-netns

const PER_NS: [&str; 3] = [
    "net/ipv4/ip_forward",
    "net/core/somaxconn",
    "net/ipv4/ping_group_range",
];
const GLOBAL: &str = "vm/swappiness";

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The keys' values as a process in `ns` (None: the run's own) reads them.
fn read_keys(ns: Option<&Netns>, keys: &[&str]) -> anyhow::Result<Vec<String>> {
    let paths: Vec<String> = keys.iter().map(|k| format!("/proc/sys/{k}")).collect();
    let Some(ns) = ns else {
        return paths
            .iter()
            .map(|p| Ok(norm(&crate::process::read(p)?)))
            .collect();
    };
    let out = crate::process::run_ok(ns.enter("cat").args(&paths))?;
    Ok(out.lines().map(norm).collect())
}

/// Values that differ from the new namespace's defaults.
fn new_values(defaults: &[String]) -> anyhow::Result<[String; 3]> {
    let fwd = if defaults[0] == "0" { "1" } else { "0" };
    let somaxconn: u64 = defaults[1].parse()?;
    let range = if defaults[2] == "100 200" {
        "101 201"
    } else {
        "100 200"
    };
    Ok([fwd.into(), (somaxconn + 7).to_string(), range.into()])
}

/// The body of `net.sysctl-per-netns`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn sysctl_per_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let host_before = read_keys(None, &PER_NS)?;
    let a = Netns::add(ctx, "a")?;
    let b = Netns::add(ctx, "b")?;
    let defaults = read_keys(Some(&a), &PER_NS)?;
    let want = new_values(&defaults)?;
    // Kernel layer: the helper writes after setns and refuses the host's netns.
    a.sysctl(PER_NS[0], &want[0])?.sysctl(PER_NS[1], &want[1])?;
    // CLI layer: a shell in `ip netns exec`, refusing the host's netns first.
    let script = format!(
        "{}echo '{}' > /proc/sys/{}",
        crate::namespaces::sh_guard(&["net"]),
        want[2],
        PER_NS[2]
    );
    crate::process::run_ok(a.exec("sh").args(["-c", &script]))?;
    let in_a = read_keys(Some(&a), &PER_NS)?;
    let reader = if v.isolated() { &b } else { &a };
    let other = read_keys(Some(reader), &PER_NS)?;
    let host_after = read_keys(None, &PER_NS)?;
    let swap = [
        read_keys(None, &[GLOBAL])?,
        read_keys(Some(&a), &[GLOBAL])?,
        read_keys(Some(&b), &[GLOBAL])?,
    ];
    ctx.observe("new_netns_defaults", &defaults);
    ctx.observe("second_netns", &other);
    ctx.observe("writer_netns", &in_a);
    ctx.observe("host_unchanged", host_after == host_before);
    ctx.observe(
        "swappiness_same_everywhere",
        swap.iter().all(|s| *s == swap[0]),
    );
    check_eq!(other, defaults, "the net sysctls of a second fresh netns");
    check_eq!(
        in_a,
        want.to_vec(),
        "the net sysctls read back in the writer's netns"
    );
    check_eq!(host_after, host_before, "the host's net sysctls");
    check!(
        swap.iter().all(|s| *s == swap[0]),
        "vm.swappiness differs between namespaces: {swap:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// net.sysfs-and-netlink-per-netns

const VETH: (&str, &str) = ("isv0", "isv1");

/// A started `nl-links` listener (stdin kept open until `events`); killed
/// on drop unless `events` took it.
struct Listener(Option<Child>);

impl Listener {
    fn start(ns: &Netns) -> Result<Listener, Problem> {
        let mut c = ns.helper("nl-links");
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            broken!("nl-links in {}: {line:?}", ns.name());
        }
        Ok(Listener(Some(child)))
    }

    fn events(mut self) -> Result<Vec<(String, String)>, Problem> {
        let Some(mut child) = self.0.take() else {
            broken!("nl-links already collected");
        };
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        if !out.status.success() {
            broken!(
                "nl-links: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let e: LinkEvents = serde_json::from_slice(&out.stdout)?;
        // Sorted: the order of the pair's two events is the kernel's business.
        let mut v: Vec<_> = e
            .events
            .into_iter()
            .filter(|(_, n)| n == VETH.0 || n == VETH.1)
            .collect();
        v.sort();
        Ok(v)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn host_class_net() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The body of `net.sysfs-and-netlink-per-netns`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn sysfs_and_netlink_per_netns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let a = Netns::add(ctx, "a")?;
    let b = Netns::add(ctx, "b")?;
    let la = Listener::start(&a)?;
    let lb = Listener::start(if v.isolated() { &b } else { &a })?;
    a.ip(&[
        "link", "add", VETH.0, "type", "veth", "peer", "name", VETH.1,
    ])?;
    let dir = ctx.scratch()?.join("sysfs");
    std::fs::create_dir_all(&dir)?;
    let d = dir.to_string_lossy().into_owned();
    let r = crate::process::run_ok(a.helper("sysfs-net").args(["--dir", &d]))?;
    let in_a: Vec<String> = serde_json::from_str(r.trim())?;
    let cli_a = crate::process::run_ok(a.exec("ls").arg("/sys/class/net"))?;
    let host = host_class_net();
    a.ip(&["link", "del", VETH.0])?;
    let (ea, eb) = (la.events()?, lb.events()?);
    let has = |l: &[String]| l.iter().any(|n| n == VETH.0);
    ctx.observe("events_in_b", &eb);
    ctx.observe("events_in_a", &ea);
    ctx.observe("sysfs_in_a_lists_veth", has(&in_a));
    ctx.observe(
        "ip_netns_exec_ls_lists_veth",
        cli_a.split_whitespace().any(|n| n == VETH.0),
    );
    ctx.observe("host_sysfs_lists_veth", has(&host));
    check!(
        eb.is_empty(),
        "the listener in netns B saw A's link events: {eb:?}"
    );
    check!(
        ea.contains(&("NEWLINK".into(), VETH.0.into()))
            && ea.contains(&("DELLINK".into(), VETH.0.into())),
        "the listener in A missed the veth's creation or deletion: {ea:?}"
    );
    check!(
        has(&in_a),
        "a sysfs mounted in A does not list {}: {in_a:?}",
        VETH.0
    );
    check!(
        cli_a.split_whitespace().any(|n| n == VETH.0),
        "`ip netns exec A ls /sys/class/net`: {cli_a:?}"
    );
    check!(!has(&host), "the host's /sys/class/net lists {}", VETH.0);
    Ok(())
}
