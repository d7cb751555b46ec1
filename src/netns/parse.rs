//! Parsers of what iproute2, ping and /proc/net print: pure text in, typed
//! values out, so the unit tests run them on captured output.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

// ---------------------------------------------------------------- iproute2 JSON

/// One address of `ip -j addr` (`addr_info`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AddrInfo {
    /// `inet` or `inet6`; `Link::ipv4` keeps only `inet`.
    pub family: String,
    /// The address without its prefix length.
    pub local: String,
    /// The prefix length in bits.
    pub prefixlen: u8,
}

/// One link of `ip -j link` / `ip -j addr`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index, which a peer's `link_index` refers to.
    pub ifindex: u32,
    /// The interface name, e.g. `veth0`.
    pub ifname: String,
    /// The `IFF_*` flags by name (`UP`, `LOWER_UP`); empty when absent.
    #[serde(default)]
    pub flags: Vec<String>,
    /// `UP`, `DOWN` or `UNKNOWN` (loopback); empty when absent.
    #[serde(default)]
    pub operstate: String,
    /// The peer's ifindex when the peer lives in another namespace.
    #[serde(default)]
    pub link_index: Option<u32>,
    /// The peer's name when it lives in the same namespace.
    #[serde(default)]
    pub link: Option<String>,
    /// Set when the peer (of a veth) is in another namespace.
    #[serde(default)]
    pub link_netnsid: Option<i64>,
    /// The addresses (`ip -j addr` only; empty from `ip -j link`).
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

impl Link {
    /// Administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// `a.b.c.d/len` of every IPv4 address.
    pub fn ipv4(&self) -> Vec<String> {
        self.addr_info
            .iter()
            .filter(|a| a.family == "inet")
            .map(|a| format!("{}/{}", a.local, a.prefixlen))
            .collect()
    }
}

/// One route of `ip -j route`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The destination: `default` or `a.b.c.d/len`.
    pub dst: String,
    /// The next hop; None for a directly connected route.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The outgoing interface.
    #[serde(default)]
    pub dev: Option<String>,
    /// Who added it: `kernel` for a connected route, `boot`, `static`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `link` for a connected route; None for a global (default) one.
    #[serde(default)]
    pub scope: Option<String>,
    /// The source address the kernel prefers on this route.
    #[serde(default)]
    pub prefsrc: Option<String>,
}

#[derive(Deserialize)]
struct NetnsEntry {
    name: String,
}

/// iproute2 prints nothing at all (not `[]`) for some empty lists.
fn parse_json_list<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> anyhow::Result<Vec<T>> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(t).with_context(|| format!("parsing `{what}` JSON: {t:.200}"))
}

/// Links as `ip -j link` or `ip -j addr` print them; empty output is an empty list.
pub fn parse_links(text: &str) -> anyhow::Result<Vec<Link>> {
    parse_json_list(text, "ip -j link/addr")
}

/// Routes as `ip -j route` prints them; empty output is an empty list.
pub fn parse_routes(text: &str) -> anyhow::Result<Vec<Route>> {
    parse_json_list(text, "ip -j route")
}

/// Names of `ip -j netns list`.
pub fn parse_netns_list(text: &str) -> anyhow::Result<Vec<String>> {
    Ok(parse_json_list::<NetnsEntry>(text, "ip -j netns list")?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

// ---------------------------------------------------------------- ping

/// The summary of one `ping` run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PingSummary {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received: 0 is what an isolated namespace must show.
    pub received: u32,
    /// Packet loss in percent, as ping rounds it.
    pub loss_pct: u32,
    /// The TTL of the first reply (63 when one router forwarded it).
    pub ttl: Option<u32>,
}

/// Parses iputils ping's output (`N packets transmitted, M received, P% packet loss`).
pub fn parse_ping(stdout: &str) -> Option<PingSummary> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut s = PingSummary::default();
    for part in line.split(',').map(str::trim) {
        let num = |p: &str| {
            p.split_whitespace()
                .next()
                .and_then(|n| n.trim_end_matches('%').parse().ok())
        };
        if part.ends_with("packets transmitted") {
            s.transmitted = num(part)?;
        } else if part.ends_with("received") {
            s.received = num(part)?;
        } else if part.ends_with("packet loss") {
            s.loss_pct = num(part)?;
        }
    }
    s.ttl = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ttl=").and_then(|t| t.parse().ok()));
    Some(s)
}

// ---------------------------------------------------------------- /proc/net

/// One IPv4 route of `/proc/net/route` (the main table).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcRoute {
    /// The interface name (first column).
    pub iface: String,
    /// `a.b.c.d/len`
    pub dst: String,
    /// The gateway; None when the route has none (0.0.0.0).
    pub gateway: Option<String>,
}

fn hex_ipv4(h: &str) -> Option<Ipv4Addr> {
    // The kernel prints the network-order bytes as a native-endian number.
    u32::from_str_radix(h, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parses `/proc/net/route`.
pub fn parse_proc_route(text: &str) -> Vec<ProcRoute> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dst, gw, mask) = (f.first()?, f.get(1)?, f.get(2)?, f.get(7)?);
            let dst = hex_ipv4(dst)?;
            let gw = hex_ipv4(gw)?;
            let len = u32::from(hex_ipv4(mask)?).count_ones();
            Some(ProcRoute {
                iface: iface.to_string(),
                dst: format!("{dst}/{len}"),
                gateway: (!gw.is_unspecified()).then(|| gw.to_string()),
            })
        })
        .collect()
}

/// One protocol's counters of `/proc/net/snmp` (`Icmp`, `Ip`, `Udp`, …):
/// a header line of names followed by a line of values.
pub fn parse_snmp(text: &str, proto: &str) -> BTreeMap<String, i64> {
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return BTreeMap::new();
    };
    names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| v.parse().ok().map(|v| (n.to_string(), v)))
        .collect()
}

/// Interface names of `/proc/net/dev`.
pub fn parse_proc_net_dev(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    v.sort();
    v
}
