//! A namespace is created, listed and starts with only a loopback, down.
//! The loopback answers ping only once it is up.

use super::*;

pub(super) fn netns_add_and_list(ctx: &mut Ctx, _v: Variant) -> Outcome {
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

pub(super) fn new_ns_only_lo_down(ctx: &mut Ctx, v: Variant) -> Outcome {
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

pub(super) fn lo_ping_fails_before_up(ctx: &mut Ctx, v: Variant) -> Outcome {
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

pub(super) fn lo_ping_succeeds_after_up(ctx: &mut Ctx, _v: Variant) -> Outcome {
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
