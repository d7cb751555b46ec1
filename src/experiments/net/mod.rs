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

mod basics;
mod lifecycle;
mod nat;
mod veth;

use basics::*;
use lifecycle::*;
use nat::*;
use veth::*;
