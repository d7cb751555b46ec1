//! Deleting a namespace takes its state with it; an anonymous namespace
//! stays out of `ip netns list`.

use super::*;

/// The seed's -A lines then its -D lines on one flavour in h: iptables-save
/// must come back to what it was before (the seed's cleanup is complete).
fn seed_rules_undone(ctx: &mut Ctx, h: &Netns, flavour: Iptables) -> Outcome {
    let version = flavour.version()?;
    let key = flavour_key(&version);
    if !other_flavour_usable(ctx, h, flavour, key) {
        return Ok(());
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
    Ok(())
}

pub(super) fn cleanup_restores_state(ctx: &mut Ctx, _v: Variant) -> Outcome {
    // This row asserts the real host's state itself, strictly around its own
    // steps, whatever the span of the other experiments does.
    let host_before = netns::HostNetSnapshot::take()?;
    let (h, ns1) = seed_pair(ctx, true)?;
    for flavour in Iptables::flavours() {
        seed_rules_undone(ctx, &h, flavour)?;
    }
    let (name, path) = (ns1.name().to_string(), ns1.path());
    let listed_before = netns::netns_list()?.contains(&name);
    let veth_before = h.link("v-eth")?.is_some();
    ns1.delete()?;
    let listed = netns::netns_list()?.contains(&name);
    let file = path.exists();
    let veth_gone = wait_until(async_bound(), || h.link("v-eth").is_ok_and(|l| l.is_none()));
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
        "v-eth still exists in h {:?} after ns1 was deleted",
        async_bound()
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

/// A process in a new anonymous network namespace (`unshare --net`), and
/// its pid once it is in there.
fn start_anonymous(ctx: &Ctx) -> Result<(Spawned, String), Problem> {
    let ours = crate::namespaces::inode("self", "net")?;
    let anon = Spawned::start(ctx.cmd("unshare").args([
        "--fork",
        "--kill-child",
        "--net",
        "sleep",
        "60",
    ]))?
    .leader_first();
    let pid = anon.pid().to_string();
    let entered = wait_until(async_bound(), || {
        crate::namespaces::inode(&pid, "net").is_ok_and(|i| i != ours)
    });
    if !entered {
        broken!("unshare --net did not enter a new namespace");
    }
    Ok((anon, pid))
}

/// The names in `list` whose /run/netns entry is the namespace `ino`.
fn listed_with_inode(list: &[String], ino: u64) -> Vec<&String> {
    list.iter()
        .filter(|n| {
            std::fs::metadata(std::path::Path::new(netns::NETNS_DIR).join(n))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ino)
        })
        .collect()
}

/// `ip netns identify PID`: the name of the named namespace PID is in, or
/// nothing.
fn identify(ctx: &Ctx, pid: &str) -> anyhow::Result<String> {
    Ok(run(ctx.cmd("ip").args(["netns", "identify", pid]))?
        .stdout
        .trim()
        .to_string())
}

pub(super) fn anonymous_ns_invisible_to_ip_netns(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (mut anon, pid) = start_anonymous(ctx)?;
    let ino = crate::namespaces::inode(&pid, "net")?;
    // A named namespace with a process in it, for contrast: `ip netns
    // identify` names it, so the empty answer for the anonymous one means
    // something.
    let named = Netns::add(ctx, "ns1")?;
    let mut inside = Spawned::start(named.exec("sleep").arg("60"))?;
    let ipid = inside.pid().to_string();
    let named_ino = named.inode();
    if !wait_until(async_bound(), || {
        crate::namespaces::inode(&ipid, "net").ok() == named_ino
    }) {
        broken!("ip netns exec did not enter {}", named.name());
    }
    let lsns = crate::namespaces::lsns("net")?;
    let in_lsns = lsns.iter().any(|r| r.ns == ino);
    let list = netns::netns_list()?;
    let listed_as = listed_with_inode(&list, ino);
    let (anon_id, named_id) = (identify(ctx, &pid)?, identify(ctx, &ipid)?);
    ctx.measure("anonymous_inode", ino);
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
