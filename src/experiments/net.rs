//! Catalogue section 2: the network namespace.
//!
//! The seed's sequence on the `netns` builder. Its "host" is a namespace `h`
//! the experiment creates, its `8.8.8.8` an upstream namespace holding
//! 203.0.113.8 behind 198.51.100.0/24; the host uplink's name `eno1` is kept
//! so that the seed's iptables rules run verbatim. Every experiment owns its
//! namespaces (run-unique names), so the section runs in parallel with itself
//! and with another run, and every one of them is wrapped in a comparison of
//! the real host's links, routes and firewall before and after.

use crate::experiment::{Ctx, Experiment, Outcome, Problem, Section, Variant};
use crate::needs::{Need, Tool};
use crate::netns::{self, AskAnswer, EchoSeen, Iptables, Link, Netns, PingSummary};
use crate::process::{run, wait_until, Spawned};
use crate::{broken, check, check_eq};
use std::time::{Duration, Instant};

const ROOT_IP: &[Need] = &[Need::Root, Need::Tool(Tool::Ip)];
const ROOT_IP_PING: &[Need] = &[Need::Root, Need::Tool(Tool::Ip), Need::Tool(Tool::Ping)];

/// The bound for states the kernel reaches asynchronously (a namespace being
/// destroyed, a packet arriving). Only a broken setup ever waits it out.
const ASYNC_BOUND: Duration = Duration::from_secs(5);

macro_rules! net_exp {
    ($id:literal, $asserts:literal, $needs:expr, $control:expr, $body:ident) => {
        Experiment {
            id: $id,
            section: Section::Net,
            asserts: $asserts,
            needs: $needs,
            control: $control,
            body: $body,
            exclusive: None,
        }
    };
}

pub static EXPERIMENTS: &[Experiment] = &[
    net_exp!(
        "net.netns-add-and-list",
        "`ip netns add` lists the namespace (and /run/netns holds it); after `ip netns delete` it is gone",
        ROOT_IP,
        None,
        netns_add_and_list
    ),
    net_exp!(
        "net.new-ns-only-lo-down",
        "a new netns has exactly one link, `lo`, DOWN, without addresses (ip -j addr and getifaddrs/proc agree)",
        ROOT_IP,
        Some("the same look at the host's own namespace"),
        new_ns_only_lo_down
    ),
    net_exp!(
        "net.lo-ping-fails-before-up",
        "`ping 127.0.0.1` in a new netns exits 2 with \"Network is unreachable\"; UDP connect() gets ENETUNREACH",
        ROOT_IP_PING,
        Some("`ip link set lo up` first"),
        lo_ping_fails_before_up
    ),
    net_exp!(
        "net.lo-ping-succeeds-after-up",
        "after `ip link set dev lo up`: ping 0% loss; lo UP with 127.0.0.1/8 (ip and getifaddrs)",
        ROOT_IP_PING,
        None,
        lo_ping_succeeds_after_up
    ),
    net_exp!(
        "net.route-table",
        "the route table of a new netns is empty; after the seed's setup exactly 10.200.1.0/24 and default via 10.200.1.1",
        ROOT_IP,
        None,
        route_table
    ),
    net_exp!(
        "net.veth-moves-between-namespaces",
        "`ip link set v-ethc netns ns1` moves the peer out of h's link list into ns1's; deleting ns1 destroys both ends",
        ROOT_IP,
        None,
        veth_moves_between_namespaces
    ),
    net_exp!(
        "net.veth-connectivity",
        "h <-> ns1 ping both ways over 10.200.1.0/24",
        ROOT_IP_PING,
        Some("veth ends left down"),
        veth_connectivity
    ),
    net_exp!(
        "net.nat-masquerade",
        "with MASQUERADE and the FORWARD rules ns1 reaches 203.0.113.8 and the upstream sees 198.51.100.1 (the router) as source; every iptables flavour present",
        &[
            Need::Root,
            Need::Tool(Tool::Ip),
            Need::Tool(Tool::Ping),
            Need::Tool(Tool::Iptables)
        ],
        Some("without the MASQUERADE rule"),
        nat_masquerade
    ),
    net_exp!(
        "net.cleanup-restores-state",
        "the seed's `iptables -D …` restores the router's iptables-save exactly; `ip netns delete ns1` removes it from `ip netns list`, /run/netns and takes the veth; the real host's network state is unchanged",
        &[Need::Root, Need::Tool(Tool::Ip), Need::Tool(Tool::Iptables)],
        None,
        cleanup_restores_state
    ),
    net_exp!(
        "net.anonymous-ns-invisible-to-ip-netns",
        "a netns made by `unshare --fork --net` is listed by `lsns -t net` but not by `ip netns list` (nor `ip netns identify`)",
        &[
            Need::Root,
            Need::Tool(Tool::Ip),
            Need::Tool(Tool::Unshare),
            Need::Tool(Tool::Lsns)
        ],
        None,
        anonymous_ns_invisible_to_ip_netns
    ),
];

/// Runs an experiment's steps inside a span of host snapshots
/// (`netns::host_span_enter`): the experiment that closes the span compares
/// the real host's network state with the span's start, and any difference
/// fails it. The steps' namespaces are all dropped (deleted) before.
/// Its records are guard bookkeeping: they never make a row that asserted
/// nothing look as if it had.
pub fn host_guarded(ctx: &mut Ctx, v: Variant, steps: fn(&mut Ctx, Variant) -> Outcome) -> Outcome {
    netns::host_span_enter()?;
    let r = steps(ctx, v);
    let Some(diff) = netns::host_span_leave()? else {
        ctx.observe_guard(
            "host_net_check",
            "deferred to the last net experiment of the span",
        );
        return r;
    };
    ctx.observe_guard("host_net_unchanged", diff.is_empty());
    if !diff.is_empty() {
        ctx.observe_guard("host_net_diff", &diff);
        // The host changing outranks what the steps found, and is never the
        // control's isolation assertion (whichever run closes the span).
        return Err(Problem::HostState(format!(
            "the real host's network state changed during this span of net experiments: {}",
            diff.join("; ")
        )));
    }
    r
}

macro_rules! guarded {
    ($outer:ident, $inner:ident) => {
        fn $outer(ctx: &mut Ctx, v: Variant) -> Outcome {
            host_guarded(ctx, v, $inner)
        }
    };
}

guarded!(netns_add_and_list, netns_add_and_list_steps);
guarded!(new_ns_only_lo_down, new_ns_only_lo_down_steps);
guarded!(lo_ping_fails_before_up, lo_ping_fails_before_up_steps);
guarded!(lo_ping_succeeds_after_up, lo_ping_succeeds_after_up_steps);
guarded!(route_table, route_table_steps);
guarded!(veth_moves_between_namespaces, veth_moves_steps);
guarded!(veth_connectivity, veth_connectivity_steps);
guarded!(nat_masquerade, nat_masquerade_steps);
guarded!(cleanup_restores_state, cleanup_restores_state_steps);
guarded!(anonymous_ns_invisible_to_ip_netns, anonymous_ns_steps);

fn names(links: &[Link]) -> Vec<String> {
    let mut v: Vec<String> = links.iter().map(|l| l.ifname.clone()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn netns_add_and_list_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let ns = Netns::add(ctx, "ns1")?;
    let name = ns.name().to_string();
    let path = ns.path();
    let listed = netns::netns_list()?.contains(&name);
    // Kernel layer: the name is a bind mount of an nsfs inode, and a process
    // that setns()es through it lands in a namespace other than ours.
    let nsfs = nix::sys::statfs::statfs(&path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false);
    let inside = ns.view()?.netns_inode;
    let file_ino = ns.inode();
    let ours = crate::namespaces::inode("self", "net")?;
    ctx.observe("listed_after_add", listed);
    ctx.observe("run_netns_is_nsfs", nsfs);
    ctx.observe("inode_differs_from_host", inside != ours);
    ns.delete()?;
    let listed_after = netns::netns_list()?.contains(&name);
    let file_after = path.exists();
    ctx.observe("listed_after_delete", listed_after);
    ctx.observe("run_netns_entry_after_delete", file_after);
    check!(
        listed,
        "`ip netns list` does not show {name} after `ip netns add`"
    );
    check!(nsfs, "{} is not an nsfs mount", path.display());
    check!(
        Some(inside) == file_ino && inside != ours,
        "setns through {} gave inode {inside} (the file's: {file_ino:?}, the host's: {ours})",
        path.display()
    );
    check!(
        !listed_after,
        "`ip netns list` still shows {name} after delete"
    );
    check!(!file_after, "{} still exists after delete", path.display());
    Ok(())
}

fn new_ns_only_lo_down_steps(ctx: &mut Ctx, v: Variant) -> Outcome {
    // The control looks at the host's own namespace, read only.
    let (_ns, links, view) = if v.isolated() {
        let ns = Netns::add(ctx, "ns1")?;
        let (l, k) = (ns.links()?, ns.view()?);
        (Some(ns), l, k)
    } else {
        (None, netns::own_links()?, netns::own_view(ctx)?)
    };
    let lo = links.iter().find(|l| l.ifname == "lo");
    ctx.observe("links", names(&links));
    ctx.observe("lo_flags", lo.map(|l| l.flags.clone()));
    ctx.observe("lo_operstate", lo.map(|l| l.operstate.clone()));
    ctx.observe(
        "addresses",
        links.iter().map(|l| l.addr_info.len()).sum::<usize>(),
    );
    ctx.observe("kernel_ifaces", &view.ifaces);
    ctx.observe("proc_net_dev", &view.proc_net_dev);
    check_eq!(names(&links), ["lo"], "links of `ip addr`");
    let lo = lo.expect("checked above");
    check!(!lo.is_up(), "lo is UP: flags {:?}", lo.flags);
    check_eq!(lo.operstate.as_str(), "DOWN", "lo operstate");
    check!(
        lo.addr_info.is_empty(),
        "lo has addresses {:?}",
        lo.addr_info
    );
    check_eq!(
        view.proc_net_dev,
        ["lo"],
        "/proc/self/net/dev interfaces inside"
    );
    let klo = view.iface("lo");
    check!(
        klo.is_some_and(|i| !i.up && i.ipv4.is_empty()) && view.ifaces.len() == 1,
        "getifaddrs inside: {:?}",
        view.ifaces
    );
    Ok(())
}

fn lo_ping_fails_before_up_steps(ctx: &mut Ctx, v: Variant) -> Outcome {
    let ns = Netns::add(ctx, "ns1")?;
    if !v.isolated() {
        ns.up("lo")?;
    }
    let r = ns.ping("127.0.0.1")?;
    let udp = ns.udp_connect("127.0.0.1:9")?;
    ctx.observe("ping_status", r.shell_status());
    ctx.observe("ping_stderr", r.stderr.trim());
    ctx.observe("udp_connect_errno", &udp.errno);
    check_eq!(r.shell_status(), 2, "ping's exit status");
    check!(
        r.stderr.contains("Network is unreachable"),
        "ping said {:?}",
        r.stderr.trim()
    );
    check_eq!(
        udp.errno.as_deref(),
        Some("ENETUNREACH"),
        "UDP connect() to 127.0.0.1"
    );
    Ok(())
}

fn lo_ping_succeeds_after_up_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let ns = Netns::add(ctx, "ns1")?;
    ns.up("lo")?;
    let r = ns.ping("127.0.0.1")?;
    let summary = netns::parse_ping(&r.stdout);
    let lo = ns.link("lo")?;
    let view = ns.view()?;
    let udp = ns.udp_connect("127.0.0.1:9")?;
    ctx.observe("ping_status", r.shell_status());
    ctx.observe("ping", &summary);
    ctx.observe("lo_flags", lo.as_ref().map(|l| l.flags.clone()));
    ctx.observe("lo_ipv4", lo.as_ref().map(Link::ipv4));
    ctx.observe("kernel_lo", view.iface("lo"));
    ctx.observe("udp_connect_ok", udp.ok);
    check_eq!(
        r.shell_status(),
        0,
        "ping's exit status ({})",
        r.stderr.trim()
    );
    check!(
        summary
            .as_ref()
            .is_some_and(|s| s.transmitted == 1 && s.received == 1 && s.loss_pct == 0),
        "ping summary {summary:?}"
    );
    let Some(lo) = lo else {
        broken!("no lo in the namespace")
    };
    check!(lo.is_up(), "lo flags {:?}", lo.flags);
    check_eq!(lo.ipv4(), ["127.0.0.1/8"], "lo's IPv4 addresses (ip addr)");
    check!(
        view.iface("lo")
            .is_some_and(|i| i.up && i.ipv4 == ["127.0.0.1/8"]),
        "getifaddrs: {:?}",
        view.iface("lo")
    );
    check!(udp.ok, "UDP connect() to 127.0.0.1 failed: {:?}", udp.errno);
    Ok(())
}

/// The seed's pair: `h` (the host) and `ns1`, joined by v-eth <-> v-ethc
/// with 10.200.1.1/24 and 10.200.1.2/24, lo up in ns1. Links stay down
/// unless `up`.
fn seed_pair(ctx: &mut Ctx, up: bool) -> anyhow::Result<(Netns, Netns)> {
    let h = Netns::add(ctx, "h")?;
    let ns1 = Netns::add(ctx, "ns1")?;
    let hs = h
        .setup()
        .veth("v-eth", &ns1, "v-ethc")
        .addr("v-eth", "10.200.1.1/24");
    let ns1s = ns1.setup().addr("v-ethc", "10.200.1.2/24").up("lo");
    if up {
        hs.up("v-eth").apply()?;
        ns1s.up("v-ethc").route("default", "10.200.1.1").apply()?;
    } else {
        hs.apply()?;
        ns1s.apply()?;
    }
    Ok((h, ns1))
}

fn route_table_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // ns1 first, alone: a new namespace has no routes at all.
    let ns1 = Netns::add(ctx, "ns1")?;
    let empty = ns1.routes()?;
    let empty_kernel = ns1.view()?.routes;
    let h = Netns::add(ctx, "h")?;
    h.setup()
        .veth("v-eth", &ns1, "v-ethc")
        .addr("v-eth", "10.200.1.1/24")
        .up("v-eth")
        .apply()?;
    ns1.setup()
        .addr("v-ethc", "10.200.1.2/24")
        .up("v-ethc")
        .up("lo")
        .route("default", "10.200.1.1")
        .apply()?;
    let routes = ns1.routes()?;
    let kernel = ns1.view()?.routes;
    // `DST [via GW] dev DEV`, as ip prints a route, for both layers.
    let line = |dst: &str, gw: &Option<String>, dev: &str| match gw {
        Some(g) => format!("{dst} via {g} dev {dev}"),
        None => format!("{dst} dev {dev}"),
    };
    let got = sorted(
        routes
            .iter()
            .map(|r| line(&r.dst, &r.gateway, r.dev.as_deref().unwrap_or("?")))
            .collect(),
    );
    let got_kernel = sorted(
        kernel
            .iter()
            .map(|r| line(&r.dst, &r.gateway, &r.iface))
            .collect(),
    );
    ctx.observe("routes_new_ns", &empty);
    ctx.observe("proc_net_route_new_ns", &empty_kernel);
    ctx.observe("routes_after_setup", &routes);
    ctx.observe("proc_net_route_after_setup", &got_kernel);
    check!(
        empty.is_empty(),
        "`ip route show` in a new netns: {empty:?}"
    );
    check!(
        empty_kernel.is_empty(),
        "/proc/net/route in a new netns: {empty_kernel:?}"
    );
    check_eq!(
        got,
        [
            "10.200.1.0/24 dev v-ethc",
            "default via 10.200.1.1 dev v-ethc"
        ],
        "`ip route show` after setup"
    );
    let connected = routes.iter().find(|r| r.dst == "10.200.1.0/24");
    check!(
        connected.is_some_and(|r| r.protocol.as_deref() == Some("kernel")
            && r.prefsrc.as_deref() == Some("10.200.1.2")),
        "the connected route: {connected:?}"
    );
    check_eq!(
        got_kernel,
        [
            "0.0.0.0/0 via 10.200.1.1 dev v-ethc",
            "10.200.1.0/24 dev v-ethc"
        ],
        "/proc/net/route after setup"
    );
    Ok(())
}

fn veth_moves_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let h = Netns::add(ctx, "h")?;
    let ns1 = Netns::add(ctx, "ns1")?;
    // The seed's two steps: create the pair in the host, then move one end.
    h.ip(&[
        "link", "add", "v-eth", "type", "veth", "peer", "name", "v-ethc",
    ])?;
    let h_before = names(&h.links()?);
    h.ip(&["link", "set", "v-ethc", "netns", ns1.name()])?;
    let h_links = h.links()?;
    let ns1_links = ns1.links()?;
    let (h_kernel, ns1_kernel) = (h.view()?, ns1.view()?);
    let v_eth = h_links.iter().find(|l| l.ifname == "v-eth");
    ctx.observe("h_links_before_move", &h_before);
    ctx.observe("h_links_after_move", names(&h_links));
    ctx.observe("ns1_links_after_move", names(&ns1_links));
    ctx.observe("h_proc_net_dev", &h_kernel.proc_net_dev);
    ctx.observe("ns1_proc_net_dev", &ns1_kernel.proc_net_dev);
    ctx.observe("v_eth_peer_netnsid", v_eth.and_then(|l| l.link_netnsid));
    check_eq!(
        h_before,
        ["lo", "v-eth", "v-ethc"],
        "h's links before the move"
    );
    check_eq!(names(&h_links), ["lo", "v-eth"], "h's links after the move");
    check_eq!(
        names(&ns1_links),
        ["lo", "v-ethc"],
        "ns1's links after the move"
    );
    check_eq!(h_kernel.proc_net_dev, ["lo", "v-eth"], "h's /proc/net/dev");
    check_eq!(
        ns1_kernel.proc_net_dev,
        ["lo", "v-ethc"],
        "ns1's /proc/net/dev"
    );
    check!(
        v_eth.is_some_and(|l| l.link_netnsid.is_some()),
        "v-eth's peer is not reported in another namespace: {v_eth:?}"
    );
    // Deleting ns1 destroys v-ethc and with it its peer in h; the kernel
    // tears the namespace down asynchronously.
    ns1.delete()?;
    let t = Instant::now();
    let gone = wait_until(ASYNC_BOUND, || h.link("v-eth").is_ok_and(|l| l.is_none()));
    ctx.observe("v_eth_gone_after_ms", t.elapsed().as_millis() as u64);
    let h_final = names(&h.links()?);
    ctx.observe("h_links_after_ns1_deleted", &h_final);
    check!(
        gone,
        "v-eth still in h {ASYNC_BOUND:?} after ns1 was deleted"
    );
    check_eq!(h_final, ["lo"], "h's links after ns1 was deleted");
    Ok(())
}

fn ping_result(r: &crate::process::Ran) -> (i32, Option<PingSummary>, String) {
    let why = if r.stderr.trim().is_empty() {
        r.stdout.lines().last().unwrap_or("").to_string()
    } else {
        r.stderr.trim().to_string()
    };
    (r.shell_status(), netns::parse_ping(&r.stdout), why)
}

fn veth_connectivity_steps(ctx: &mut Ctx, v: Variant) -> Outcome {
    let (h, ns1) = seed_pair(ctx, v.isolated())?;
    if !v.isolated() {
        h.setup().down("v-eth").apply()?;
        ns1.setup().down("v-ethc").apply()?;
    }
    // With the links down both pings fail at once (no route: exit 2), so
    // the control never waits for a timeout.
    let (out_status, out_summary, out_why) = ping_result(&ns1.ping("10.200.1.1")?);
    let (back_status, back_summary, back_why) = ping_result(&h.ping("10.200.1.2")?);
    let view = ns1.view()?;
    ctx.observe("ns1_to_h_status", out_status);
    ctx.observe("ns1_to_h", &out_summary);
    ctx.observe("h_to_ns1_status", back_status);
    ctx.observe("h_to_ns1", &back_summary);
    ctx.observe("kernel_v_ethc", view.iface("v-ethc"));
    let ok = |s: &Option<PingSummary>| s.as_ref().is_some_and(|s| s.received == 1);
    check!(
        out_status == 0 && ok(&out_summary),
        "ns1 -> 10.200.1.1: exit {out_status}, {out_why}"
    );
    check!(
        back_status == 0 && ok(&back_summary),
        "h -> 10.200.1.2: exit {back_status}, {back_why}"
    );
    check!(
        view.iface("v-ethc")
            .is_some_and(|i| i.up && i.ipv4 == ["10.200.1.2/24"]),
        "getifaddrs in ns1: {:?}",
        view.iface("v-ethc")
    );
    Ok(())
}

const UPSTREAM: &str = "203.0.113.8";
const ROUTER_UP: &str = "198.51.100.1";
const ECHO_AT: &str = "203.0.113.8:7";

/// The seed's whole topology: the pair, plus h's uplink `eno1`
/// (198.51.100.1/24) to the upstream namespace (198.51.100.2/24, 203.0.113.8
/// on lo), h's default route through it, forwarding on in h. The upstream
/// has no route back to 10.200.1.0/24, as the internet has none to a
/// private network.
fn seed_lab(ctx: &mut Ctx) -> anyhow::Result<(Netns, Netns, Netns)> {
    let (h, ns1) = seed_pair(ctx, true)?;
    let up = Netns::add(ctx, "up")?;
    h.setup()
        .veth("eno1", &up, "up0")
        .addr("eno1", "198.51.100.1/24")
        .up("eno1")
        .route("default", "198.51.100.2")
        .apply()?;
    h.forwarding()?;
    up.setup()
        .up("lo")
        .addr("lo", &format!("{UPSTREAM}/32"))
        .addr("up0", "198.51.100.2/24")
        .up("up0")
        .apply()?;
    Ok((h, ns1, up))
}

const MASQUERADE: &[&str] = &[
    "POSTROUTING",
    "-s",
    "10.200.1.0/255.255.255.0",
    "-o",
    "eno1",
    "-j",
    "MASQUERADE",
];
const FORWARD_IN: &[&str] = &["FORWARD", "-i", "eno1", "-o", "v-eth", "-j", "ACCEPT"];
const FORWARD_OUT: &[&str] = &["FORWARD", "-o", "eno1", "-i", "v-eth", "-j", "ACCEPT"];
/// The seed's own -D line for the second FORWARD rule names the options in
/// the other order; iptables matches the rule, not the text.
const FORWARD_OUT_SEED_DELETE: &[&str] = &["FORWARD", "-i", "v-eth", "-o", "eno1", "-j", "ACCEPT"];

fn with_op<'a>(op: &'a str, table: Option<&'a str>, rule: &'a [&'a str]) -> Vec<&'a str> {
    let mut v = Vec::new();
    if let Some(t) = table {
        v.extend(["-t", t]);
    }
    v.push(op);
    v.extend_from_slice(rule);
    v
}

/// What ns1's two probes of the upstream found.
#[derive(serde::Serialize)]
struct Probe {
    ping_status: Option<i32>,
    ping: Option<PingSummary>,
    /// How the ping ended: on its own, or stopped because the far end
    /// counted the request and sent no reply.
    ping_ended: &'static str,
    upstream_in_echos: i64,
    upstream_out_echo_reps: i64,
    seen: EchoSeen,
    answer: Option<AskAnswer>,
}

fn rest_of(sp: &mut Spawned) -> String {
    let mut s = String::new();
    while let Ok(l) = sp.read_line() {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// `ping 203.0.113.8` from ns1 (the seed's step) and a UDP probe whose far
/// end reports the source address it saw. Absence is proved by the far end,
/// never by waiting: the upstream's ICMP counters show the echo request
/// arrived and whether a reply left; the UDP echo reports the source and
/// whether its answer could be sent (ENETUNREACH: no route back).
fn probe_upstream(ns1: &Netns, up: &Netns) -> anyhow::Result<Probe> {
    let mut echo = Spawned::start(
        up.helper("udp-echo")
            .args([ECHO_AT, "--timeout-ms", "5000"]),
    )?;
    let ready = echo.read_line()?;
    anyhow::ensure!(ready == "ready", "udp-echo said {ready:?}");
    let epid = echo.pid();
    anyhow::ensure!(
        crate::namespaces::inode(&epid.to_string(), "net").ok() == up.inode(),
        "the echo process is not in the upstream namespace"
    );
    let icmp = |k: &str| -> anyhow::Result<i64> {
        netns::snmp_of(epid, "Icmp")?
            .get(k)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no Icmp {k} counter"))
    };
    let (in0, out0) = (icmp("InEchos")?, icmp("OutEchoReps")?);
    let mut ping = Spawned::start(ns1.exec("ping").args(["-c1", "-W5", UPSTREAM]))?;
    let arrived = wait_until(ASYNC_BOUND, || icmp("InEchos").is_ok_and(|n| n > in0));
    anyhow::ensure!(
        arrived,
        "ns1's echo request never reached the upstream (forwarding broken)"
    );
    let mut ask = Spawned::start(
        ns1.helper("udp-ask")
            .args([ECHO_AT, "--timeout-ms", "5000"]),
    )?;
    let seen: EchoSeen = serde_json::from_str(&echo.read_line()?)?;
    let answer = if seen.reply.as_deref() == Some("sent") {
        Some(serde_json::from_str(&ask.read_line()?)?)
    } else {
        ask.kill();
        None
    };
    // The echo request was handled (reply or not) in the same softirq that
    // counted it, long before the UDP round trip above: the counter is final.
    let replies = icmp("OutEchoReps")? - out0;
    let (ping_status, ping_summary, ping_ended) = if replies > 0 {
        let st = ping.wait()?;
        let out = rest_of(&mut ping);
        (st.code(), netns::parse_ping(&out), "exited")
    } else {
        ping.kill();
        (
            None,
            None,
            "killed: the upstream got the echo request and sent no reply",
        )
    };
    Ok(Probe {
        ping_status,
        ping: ping_summary,
        ping_ended,
        upstream_in_echos: icmp("InEchos")? - in0,
        upstream_out_echo_reps: replies,
        seen,
        answer,
    })
}

fn flavour_key(version: &str) -> &'static str {
    if version.contains("nf_tables") {
        "nf_tables"
    } else if version.contains("legacy") {
        "legacy"
    } else {
        "iptables"
    }
}

/// The host's default iptables is required; the other flavour is extra
/// coverage, and a kernel may lack it (legacy xtables is optional in new
/// kernels): then it is recorded as unavailable, with iptables' own words,
/// instead of breaking the experiment.
fn other_flavour_usable(ctx: &mut Ctx, h: &Netns, flavour: Iptables, key: &str) -> bool {
    if flavour == Iptables::Default {
        return true;
    }
    match crate::process::run(h.enter(flavour.command()).args(["-t", "nat", "-S"])) {
        Ok(r) if r.success() => true,
        Ok(r) => {
            ctx.observe(&format!("{key}.unavailable"), r.stderr.trim());
            false
        }
        Err(e) => {
            ctx.observe(&format!("{key}.unavailable"), e.to_string());
            false
        }
    }
}

fn nat_masquerade_steps(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut versions = Vec::new();
    for flavour in Iptables::flavours() {
        let version = flavour.version()?;
        let key = flavour_key(&version);
        versions.push(version.clone());
        ctx.observe("iptables_versions", &versions);
        // A fresh topology per flavour: nf_tables and legacy NAT must not
        // share one router.
        let (h, ns1, up) = seed_lab(ctx)?;
        if !other_flavour_usable(ctx, &h, flavour, key) {
            continue;
        }
        if v.isolated() {
            h.iptables(flavour, &with_op("-A", Some("nat"), MASQUERADE))?;
        }
        h.iptables(flavour, &with_op("-A", None, FORWARD_IN))?
            .iptables(flavour, &with_op("-A", None, FORWARD_OUT))?;
        let p = probe_upstream(&ns1, &up)?;
        let seen_ip = p
            .seen
            .peer
            .as_deref()
            .and_then(|s| s.rsplit_once(':'))
            .map(|(ip, _)| ip.to_string());
        ctx.observe(&format!("{key}.probe"), &p);
        ctx.observe(&format!("{key}.upstream_saw_source"), &seen_ip);
        // Forwarding is the setup, not the isolation: without MASQUERADE the
        // probe still arrives (from 10.200.1.2), so a timeout is a break.
        if p.seen.timeout {
            broken!("[{version}] the UDP probe never reached the upstream");
        }
        check_eq!(
            seen_ip.as_deref(),
            Some(ROUTER_UP),
            "[{version}] source address the upstream saw (its answer: {:?})",
            p.seen.reply
        );
        check_eq!(
            p.seen.reply.as_deref(),
            Some("sent"),
            "[{version}] the upstream's answer"
        );
        let answer = p.answer.as_ref().and_then(|a| a.answer.clone());
        check_eq!(
            answer,
            p.seen.peer.clone(),
            "[{version}] answer ns1 received"
        );
        check_eq!(
            p.upstream_out_echo_reps,
            1,
            "[{version}] echo replies the upstream sent"
        );
        check_eq!(
            p.ping_status,
            Some(0),
            "[{version}] `ping {UPSTREAM}` exit status"
        );
        check!(
            p.ping
                .as_ref()
                .is_some_and(|s| s.received == 1 && s.ttl == Some(63)),
            "[{version}] ping summary (one reply, ttl 63 after one router): {:?}",
            p.ping
        );
    }
    Ok(())
}

fn cleanup_restores_state_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // This row asserts the real host's state itself, strictly around its own
    // steps, whatever the span of the other experiments does.
    let host_before = netns::HostNetSnapshot::take()?;
    let (h, ns1) = seed_pair(ctx, true)?;
    for flavour in Iptables::flavours() {
        let version = flavour.version()?;
        let key = flavour_key(&version);
        if !other_flavour_usable(ctx, &h, flavour, key) {
            continue;
        }
        // The router has a firewall of its own before the seed's rules, as a
        // real host has: in a fresh namespace iptables-nft has no tables at
        // all, and -A/-D leaves the (empty) tables behind.
        h.iptables(flavour, &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"])?
            .iptables(
                flavour,
                &["-t", "nat", "-A", "PREROUTING", "-i", "lo", "-j", "RETURN"],
            )?;
        let before = h.iptables_save(flavour)?;
        h.iptables(flavour, &with_op("-A", Some("nat"), MASQUERADE))?
            .iptables(flavour, &with_op("-A", None, FORWARD_IN))?
            .iptables(flavour, &with_op("-A", None, FORWARD_OUT))?;
        let during = h.iptables_save(flavour)?;
        h.iptables(flavour, &with_op("-D", Some("nat"), MASQUERADE))?
            .iptables(flavour, &with_op("-D", None, FORWARD_IN))?
            .iptables(flavour, &with_op("-D", None, FORWARD_OUT_SEED_DELETE))?;
        let after = h.iptables_save(flavour)?;
        ctx.observe(&format!("{key}.version"), &version);
        ctx.observe(&format!("{key}.save_before"), &before);
        ctx.observe(&format!("{key}.save_after"), &after);
        // The -A lines taking effect is setup: without them "restored"
        // below would hold trivially.
        if !(during.contains("-A POSTROUTING -s 10.200.1.0/24 -o eno1 -j MASQUERADE")
            && during.contains("-A FORWARD -i eno1 -o v-eth -j ACCEPT")
            && during.contains("-A FORWARD -i v-eth -o eno1 -j ACCEPT"))
        {
            broken!("[{version}] the seed's rules are not in iptables-save: {during}");
        }
        check_eq!(
            after,
            before,
            "[{version}] iptables-save after the seed's -D lines"
        );
    }
    let (name, path) = (ns1.name().to_string(), ns1.path());
    let listed_before = netns::netns_list()?.contains(&name);
    let veth_before = h.link("v-eth")?.is_some();
    ns1.delete()?;
    let listed = netns::netns_list()?.contains(&name);
    let file = path.exists();
    let veth_gone = wait_until(ASYNC_BOUND, || h.link("v-eth").is_ok_and(|l| l.is_none()));
    ctx.observe("ns1_listed_after_delete", listed);
    ctx.observe("run_netns_entry_after_delete", file);
    ctx.observe("v_eth_gone", veth_gone);
    if !(listed_before && veth_before) {
        broken!("setup: ns1 listed {listed_before}, v-eth present {veth_before}");
    }
    check!(!listed, "`ip netns list` still shows {name}");
    check!(!file, "{} still exists", path.display());
    check!(
        veth_gone,
        "v-eth still exists in h {ASYNC_BOUND:?} after ns1 was deleted"
    );
    drop(h);
    let host_diff = host_before.diff(&netns::HostNetSnapshot::take()?);
    ctx.observe("host_links_routes_firewall_unchanged", host_diff.is_empty());
    ctx.observe(
        "host_snapshot_parts",
        host_before.parts.keys().collect::<Vec<_>>(),
    );
    check!(
        host_diff.is_empty(),
        "the real host's links/routes/firewall changed: {}",
        host_diff.join("; ")
    );
    Ok(())
}

fn anonymous_ns_steps(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let ours = crate::namespaces::inode("self", "net")?;
    let mut anon = Spawned::start(ctx.cmd("unshare").args([
        "--fork",
        "--kill-child",
        "--net",
        "sleep",
        "60",
    ]))?
    .leader_first();
    let pid = anon.pid().to_string();
    let entered = wait_until(ASYNC_BOUND, || {
        crate::namespaces::inode(&pid, "net").is_ok_and(|i| i != ours)
    });
    if !entered {
        broken!("unshare --net did not enter a new namespace");
    }
    let ino = crate::namespaces::inode(&pid, "net")?;
    // A named namespace with a process in it, for contrast: `ip netns
    // identify` names it, so the empty answer for the anonymous one means
    // something.
    let named = Netns::add(ctx, "ns1")?;
    let mut inside = Spawned::start(named.exec("sleep").arg("60"))?;
    let ipid = inside.pid().to_string();
    let named_ino = named.inode();
    if !wait_until(ASYNC_BOUND, || {
        crate::namespaces::inode(&ipid, "net").ok() == named_ino
    }) {
        broken!("ip netns exec did not enter {}", named.name());
    }
    let lsns = crate::namespaces::lsns("net")?;
    let in_lsns = lsns.iter().any(|r| r.ns == ino);
    let list = netns::netns_list()?;
    let listed_as: Vec<&String> = list
        .iter()
        .filter(|n| {
            std::fs::metadata(std::path::Path::new(netns::NETNS_DIR).join(n))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ino)
        })
        .collect();
    let identify = |p: &str| -> anyhow::Result<String> {
        Ok(run(ctx.cmd("ip").args(["netns", "identify", p]))?
            .stdout
            .trim()
            .to_string())
    };
    let (anon_id, named_id) = (identify(&pid)?, identify(&ipid)?);
    ctx.observe("anonymous_inode", ino);
    ctx.observe("in_lsns", in_lsns);
    ctx.measure("ip_netns_list", &list);
    ctx.observe("listed_as", &listed_as);
    ctx.observe("ip_netns_identify_anonymous", &anon_id);
    ctx.observe("ip_netns_identify_named", &named_id);
    check!(
        in_lsns,
        "`lsns -t net` does not list net:[{ino}] of pid {pid}"
    );
    check!(
        listed_as.is_empty(),
        "`ip netns list` names the anonymous ns: {listed_as:?}"
    );
    check_eq!(
        anon_id.as_str(),
        "",
        "`ip netns identify` of the anonymous ns's process"
    );
    check_eq!(
        named_id.as_str(),
        named.name(),
        "`ip netns identify` of a process in the named ns"
    );
    inside.kill();
    anon.kill();
    Ok(())
}
