//! Catalogue section 2: the network namespace.
//!
//! The seed's sequence on the `netns` builder. Its "host" is a namespace `h`
//! the experiment creates, its `8.8.8.8` an upstream namespace holding
//! 203.0.113.8 behind 198.51.100.0/24; the host uplink's name `eno1` is kept
//! so that the seed's iptables rules run verbatim. Every experiment owns its
//! namespaces (run-unique names), so the section runs in parallel with itself
//! and with another run, and the section's fixture (`HOST_GUARD`) wraps every
//! one of them in a comparison of the real host's links, routes and firewall
//! before and after.

use crate::experiment::{Ctx, Experiment, Fixture, Outcome, Problem, Variant};
use crate::needs::{cmd, Need, ROOT};
use crate::netns::{self, AskAnswer, EchoSeen, Iptables, Link, Netns, PingSummary};
use crate::process::{run, wait_until, Spawned};
use crate::{broken, check, check_eq, needs};
use std::time::{Duration, Instant};

/// What every net row needs; some add a tool.
const ROOT_IP: &[Need] = needs![ROOT, cmd::IP];
const ROOT_IP_PING: &[Need] = needs![ROOT_IP, cmd::PING];

/// The bound for states the kernel reaches asynchronously (a namespace being
/// destroyed, a packet arriving). Only a broken setup ever waits it out, so
/// the qemu guest, where everything runs ~30x slower, gets six times more.
fn async_bound() -> Duration {
    if crate::process::in_qemu_guest() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }
}

/// Section 2's rows (network namespace), each run inside the host guard.
pub static EXPERIMENTS: &[Experiment] = &HOST_GUARD.around_each([
    Experiment::new("net.netns-add-and-list", netns_add_and_list)
        .asserts("`ip netns add` lists the namespace (and /run/netns holds it); after `ip netns delete` it is gone")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS]),
    Experiment::new("net.new-ns-only-lo-down", new_ns_only_lo_down)
        .asserts("a new netns has exactly one link, `lo`, DOWN, without addresses (ip -j addr and getifaddrs/proc agree)")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS])
        .control("the same look at the host's own namespace"),
    Experiment::new("net.lo-ping-fails-before-up", lo_ping_fails_before_up)
        .asserts("`ping 127.0.0.1` in a new netns exits 2 with \"Network is unreachable\"; UDP connect() gets ENETUNREACH")
        .needs(needs![ROOT_IP_PING, crate::needs::kc::NET_NS])
        .control("`ip link set lo up` first"),
    Experiment::new("net.lo-ping-succeeds-after-up", lo_ping_succeeds_after_up)
        .asserts("after `ip link set dev lo up`: ping 0% loss; lo UP with 127.0.0.1/8 (ip and getifaddrs)")
        .anchor("LTP netns_comm.sh")
        .needs(needs![ROOT_IP_PING, crate::needs::kc::NET_NS]),
    Experiment::new("net.route-table", route_table)
        .asserts("the route table of a new netns is empty; after the seed's setup exactly 10.200.1.0/24 and default via 10.200.1.1")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS]),
    Experiment::new("net.veth-moves-between-namespaces", veth_moves_between_namespaces)
        .asserts("`ip link set v-ethc netns ns1` moves the peer out of h's link list into ns1's; deleting ns1 destroys both ends")
        .anchor("LTP netns_breakns.sh").anchor("youki net_devices")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS, crate::needs::kc::VETH]),
    Experiment::new("net.veth-connectivity", veth_connectivity)
        .asserts("h <-> ns1 ping both ways over 10.200.1.0/24")
        .anchor("LTP netns_comm.sh")
        .needs(needs![ROOT_IP_PING, crate::needs::kc::NET_NS, crate::needs::kc::VETH])
        .control("veth ends left down"),
    Experiment::new("net.nat-masquerade", nat_masquerade)
        .asserts("with MASQUERADE and the FORWARD rules ns1 reaches 203.0.113.8 and the upstream sees 198.51.100.1 (the router) as source; every iptables flavour present")
        .needs(needs![ROOT_IP_PING, cmd::IPTABLES, crate::needs::kc::NET_NS, crate::needs::kc::VETH, crate::needs::kc::NF_NAT, crate::needs::kc::NETFILTER_XT_TARGET_MASQUERADE])
        .control("without the MASQUERADE rule"),
    Experiment::new("net.cleanup-restores-state", cleanup_restores_state)
        .asserts("the seed's `iptables -D …` restores the router's iptables-save exactly; `ip netns delete ns1` removes it from `ip netns list`, /run/netns and takes the veth; the real host's network state is unchanged")
        .needs(needs![ROOT_IP, cmd::IPTABLES, crate::needs::kc::NET_NS, crate::needs::kc::VETH, crate::needs::kc::NF_NAT]),
    Experiment::new("net.anonymous-ns-invisible-to-ip-netns", anonymous_ns_invisible_to_ip_netns)
        .asserts("a netns made by `unshare --fork --net` is listed by `lsns -t net` but not by `ip netns list` (nor `ip netns identify`)")
        .needs(needs![ROOT_IP, cmd::UNSHARE, cmd::LSNS, crate::needs::kc::NET_NS]),
    Experiment::new("net.sysctl-per-netns", sysctl_per_netns)
        .asserts("net.ipv4.ip_forward, net.core.somaxconn (helper after setns) and net.ipv4.ping_group_range (a shell in `ip netns exec`) written in suite netns A read back there only: a second fresh netns keeps the defaults, the host's values are unchanged; vm.swappiness (global, read only) is the same in every ns")
        .anchor("runtime-tools linux_sysctl").anchor("youki sysctl")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS])
        .control("the reader shares the writer's netns: it sees the new values"),
    Experiment::new("net.sysfs-and-netlink-per-netns", sysfs_and_netlink_per_netns)
        .asserts("a veth pair made in suite netns A is listed in /sys/class/net of a sysfs mounted in A (and by `ip netns exec A ls`), never in the host's; an RTMGRP_LINK listener in A sees its NEWLINK and DELLINK, one in suite netns B neither")
        .anchor("LTP netns_sysfs.sh").anchor("LTP netns_netlink")
        .needs(needs![ROOT_IP, crate::needs::kc::NET_NS, crate::needs::kc::VETH])
        .control("the second listener in A (the writer's ns): it sees both events"),
]);

/// Every net body runs inside a span of host snapshots
/// (`netns::host_span_enter`): the experiment that closes the span compares
/// the real host's network state with the span's start, and any difference
/// fails it (the steps' namespaces are all deleted by then). Its records are
/// guard bookkeeping: they never make a row that asserted nothing look as if
/// it had.
pub static HOST_GUARD: Fixture = Fixture {
    setup: enter_host_span,
    teardown: leave_host_span,
};

fn enter_host_span(_ctx: &mut Ctx) -> Outcome {
    netns::host_span_enter()?;
    Ok(())
}

fn leave_host_span(ctx: &mut Ctx, r: Outcome) -> Outcome {
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
mod per_ns;
mod veth;

use basics::*;
use lifecycle::*;
use nat::*;
use per_ns::*;
use veth::*;
