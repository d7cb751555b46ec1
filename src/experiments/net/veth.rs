//! The seed pair: a veth between two namespaces, its routes, its moves
//! between namespaces and the connectivity across it.

use super::*;

/// The seed's pair: `h` (the host) and `ns1`, joined by v-eth <-> v-ethc
/// with 10.200.1.1/24 and 10.200.1.2/24, lo up in ns1. Links stay down
/// unless `up`.
pub(super) fn seed_pair(ctx: &mut Ctx, up: bool) -> anyhow::Result<(Netns, Netns)> {
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

/// `DST [via GW] dev DEV`, as ip prints a route, so that iproute2's and the
/// kernel's routes compare as the same lines.
fn route_line(dst: &str, gw: &Option<String>, dev: &str) -> String {
    match gw {
        Some(g) => format!("{dst} via {g} dev {dev}"),
        None => format!("{dst} dev {dev}"),
    }
}

/// h, joined to ns1 by the seed's veth, ns1's default route through it: the
/// routes ip and the kernel must then show in ns1.
fn route_peer(ctx: &mut Ctx, ns1: &Netns) -> anyhow::Result<Netns> {
    let h = Netns::add(ctx, "h")?;
    h.setup()
        .veth("v-eth", ns1, "v-ethc")
        .addr("v-eth", "10.200.1.1/24")
        .up("v-eth")
        .apply()?;
    ns1.setup()
        .addr("v-ethc", "10.200.1.2/24")
        .up("v-ethc")
        .up("lo")
        .route("default", "10.200.1.1")
        .apply()?;
    Ok(h)
}

pub(super) fn route_table(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // ns1 first, alone: a new namespace has no routes at all.
    let ns1 = Netns::add(ctx, "ns1")?;
    let empty = ns1.routes()?;
    let empty_kernel = ns1.view()?.routes;
    let _h = route_peer(ctx, &ns1)?;
    let routes = ns1.routes()?;
    let kernel = ns1.view()?.routes;
    let got = sorted(
        routes
            .iter()
            .map(|r| route_line(&r.dst, &r.gateway, r.dev.as_deref().unwrap_or("?")))
            .collect(),
    );
    let got_kernel = sorted(
        kernel
            .iter()
            .map(|r| route_line(&r.dst, &r.gateway, &r.iface))
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

pub(super) fn veth_moves_between_namespaces(ctx: &mut Ctx, _v: Variant) -> Outcome {
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
    let gone = wait_until(async_bound(), || h.link("v-eth").is_ok_and(|l| l.is_none()));
    ctx.observe("v_eth_gone_after_ms", t.elapsed().as_millis() as u64);
    let h_final = names(&h.links()?);
    ctx.observe("h_links_after_ns1_deleted", &h_final);
    check!(
        gone,
        "v-eth still in h {:?} after ns1 was deleted",
        async_bound()
    );
    check_eq!(h_final, ["lo"], "h's links after ns1 was deleted");
    Ok(())
}

pub(super) fn ping_result(r: &crate::process::Ran) -> (i32, Option<PingSummary>, String) {
    let why = if r.stderr.trim().is_empty() {
        r.stdout.lines().last().unwrap_or("").to_string()
    } else {
        r.stderr.trim().to_string()
    };
    (r.shell_status(), netns::parse_ping(&r.stdout), why)
}

pub(super) fn veth_connectivity(ctx: &mut Ctx, v: Variant) -> Outcome {
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
