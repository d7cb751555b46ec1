//! Unit tests of the parsers, the iptables normal form and the host diff.

use super::*;
use rstest::rstest;

const NEW_NS_ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"mtu":65536,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[]}]"#;
const LO_UP_ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;
const VETH_BOTH_HERE: &str = r#"[{"ifindex":2,"link":"v-eth","ifname":"v-ethc","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"da:9a:8d:65:b6:f4","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
const VETH_MOVED: &str = r#"[{"ifindex":3,"link_index":2,"ifname":"v-eth","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"f2:6a:0d:87:74:03","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0}]"#;

#[rstest]
#[case(NEW_NS_ADDR, "lo", false, "DOWN", &[], None, None)]
#[case(LO_UP_ADDR, "lo", true, "UNKNOWN", &["127.0.0.1/8"], None, None)]
#[case(VETH_BOTH_HERE, "v-ethc", false, "DOWN", &[], Some("v-eth"), None)]
#[case(VETH_MOVED, "v-eth", false, "DOWN", &[], None, Some(0))]
fn parses_ip_j_addr(
    #[case] text: &str,
    #[case] name: &str,
    #[case] up: bool,
    #[case] oper: &str,
    #[case] v4: &[&str],
    #[case] peer_here: Option<&str>,
    #[case] netnsid: Option<i64>,
) {
    let l = parse_links(text).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].ifname, name);
    assert_eq!(l[0].is_up(), up);
    assert_eq!(l[0].operstate, oper);
    assert_eq!(l[0].ipv4(), v4);
    assert_eq!(l[0].link.as_deref(), peer_here);
    assert_eq!(l[0].link_netnsid, netnsid);
}

/// dst, gateway, dev, protocol
type RouteRow = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[rstest]
#[case("[]", vec![])]
#[case("", vec![])]
#[case(
    r#"[{"dst":"default","gateway":"10.200.1.1","dev":"v-ethc","flags":[]},{"dst":"10.200.1.0/24","dev":"v-ethc","protocol":"kernel","scope":"link","prefsrc":"10.200.1.2","flags":[]}]"#,
    vec![("default", Some("10.200.1.1"), Some("v-ethc"), None), ("10.200.1.0/24", None, Some("v-ethc"), Some("kernel"))]
)]
fn parses_ip_j_route(#[case] text: &str, #[case] want: Vec<RouteRow>) {
    let got: Vec<_> = parse_routes(text)
        .unwrap()
        .into_iter()
        .map(|r| (r.dst, r.gateway, r.dev, r.protocol))
        .collect();
    let want: Vec<_> = want
        .into_iter()
        .map(|(d, g, v, p)| {
            (
                d.to_string(),
                g.map(String::from),
                v.map(String::from),
                p.map(String::from),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[rstest]
#[case("", &[])]
#[case(r#"[{"name":"isoc-1-ns1"}]"#, &["isoc-1-ns1"])]
#[case(r#"[{"name":"a","id":0},{"name":"b"}]"#, &["a", "b"])]
fn parses_ip_j_netns_list(#[case] text: &str, #[case] want: &[&str]) {
    assert_eq!(parse_netns_list(text).unwrap(), want);
}

#[rstest]
#[case("not json")]
#[case(r#"[{"ifname":"lo"}]"#)]
fn rejects_malformed_links(#[case] text: &str) {
    assert!(parse_links(text).is_err());
}

#[rstest]
#[case(
    "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.111 ms\n\n--- 127.0.0.1 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\n",
    Some((1, 1, 0, Some(64)))
)]
#[case(
    "PING 203.0.113.8 (203.0.113.8) 56(84) bytes of data.\n\n--- 203.0.113.8 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n",
    Some((1, 0, 100, None))
)]
#[case(
    "64 bytes from 203.0.113.8: icmp_seq=1 ttl=63 time=0.2 ms\n2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 1001ms\n",
    Some((2, 1, 50, Some(63)))
)]
#[case("ping: connect: Network is unreachable\n", None)]
fn parses_ping(#[case] out: &str, #[case] want: Option<(u32, u32, u32, Option<u32>)>) {
    let got = parse_ping(out).map(|s| (s.transmitted, s.received, s.loss_pct, s.ttl));
    assert_eq!(got, want);
}

#[rstest]
#[case(
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
     v-ethc\t00000000\t0101C80A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
     v-ethc\t0001C80A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    vec![("v-ethc", "0.0.0.0/0", Some("10.200.1.1")), ("v-ethc", "10.200.1.0/24", None)]
)]
#[case("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n", vec![])]
fn parses_proc_net_route(#[case] text: &str, #[case] want: Vec<(&str, &str, Option<&str>)>) {
    let got: Vec<_> = parse_proc_route(text)
        .into_iter()
        .map(|r| (r.iface, r.dst, r.gateway))
        .collect();
    let want: Vec<_> = want
        .into_iter()
        .map(|(i, d, g)| (i.to_string(), d.to_string(), g.map(String::from)))
        .collect();
    assert_eq!(got, want);
}

const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 2 64 3\nIcmp: InMsgs InErrors InEchos OutEchoReps\nIcmp: 2 0 2 1\nIcmpMsg: InType8\nIcmpMsg: 2\n";

#[rstest]
#[case("Icmp", "InEchos", Some(2))]
#[case("Icmp", "OutEchoReps", Some(1))]
#[case("Ip", "Forwarding", Some(2))]
#[case("IcmpMsg", "InType8", Some(2))]
#[case("Udp", "InDatagrams", None)]
fn parses_proc_net_snmp(#[case] proto: &str, #[case] key: &str, #[case] want: Option<i64>) {
    assert_eq!(parse_snmp(SNMP, proto).get(key).copied(), want);
}

#[rstest]
#[case(
    "Inter-|   Receive |  Transmit\n face |bytes    packets\n    lo:       0       0\n v-ethc: 1 2\n",
    &["lo", "v-ethc"]
)]
#[case("Inter-|\n face |\n", &[])]
fn parses_proc_net_dev(#[case] text: &str, #[case] want: &[&str]) {
    assert_eq!(parse_proc_net_dev(text), want);
}

#[rstest]
#[case(
    "# Generated by iptables-save v1.8.9 on Sun Nov 29 03:05:45 2026\n*nat\n:PREROUTING ACCEPT [12:345]\n-A POSTROUTING -s 10.200.1.0/24 -o eno1 -j MASQUERADE\nCOMMIT\n# Completed on Sun\n",
    "*nat\n:PREROUTING ACCEPT\n-A POSTROUTING -s 10.200.1.0/24 -o eno1 -j MASQUERADE\nCOMMIT\n"
)]
#[case("", "")]
#[case(":DOCKER - [0:0]\n", ":DOCKER -\n")]
fn normalizes_iptables_save(#[case] text: &str, #[case] want: &str) {
    assert_eq!(normalize_iptables_save(text), want);
}

fn snap(link: &str, route: &str, fw: &str, docker: bool) -> HostNetSnapshot {
    let mut parts = BTreeMap::from([
        ("ip -o link".to_string(), link.to_string()),
        ("ip route".to_string(), route.to_string()),
        ("iptables-save".to_string(), fw.to_string()),
    ]);
    if docker {
        parts.insert("dockerd".into(), "running".into());
    }
    HostNetSnapshot { parts }
}

const LO: &str = "1: lo: <LOOPBACK,UP> mtu 65536\n";
const LINKS: &str = "1: lo: <LOOPBACK,UP> mtu 65536\n5: docker0: <NO-CARRIER,UP> state DOWN\n";
const LINKS_CONTAINER: &str = "1: lo: <LOOPBACK,UP> mtu 65536\n5: docker0: <UP,LOWER_UP> state UP\n9: veth1a2b@if8: <UP> master docker0 state UP\n";
const ROUTES: &str = "default via 192.0.2.1 dev eth0\n";

#[rstest]
#[case(snap(LINKS, ROUTES, "", false), snap(LINKS, ROUTES, "", false), 0)]
// A rule left in the host firewall.
#[case(
    snap(LINKS, ROUTES, "", false),
    snap(LINKS, ROUTES, "-A FORWARD -j ACCEPT\n", false),
    1
)]
// A link leaking into the host namespace.
#[case(snap(LINKS, ROUTES, "", false), snap(&format!("{LINKS}7: v-eth@if6: <UP>\n"), ROUTES, "", false), 1)]
// A changed route.
#[case(
    snap(LINKS, ROUTES, "", false),
    snap(LINKS, "default via 198.51.100.2 dev eth0\n", "", false),
    2
)]
// Docker's bridge changing while dockerd runs is not ours.
#[case(
    snap(LINKS, ROUTES, "", true),
    snap(LINKS_CONTAINER, ROUTES, "", true),
    0
)]
// Nor a release engine's bridge (ci/docker-engine.sh --release), its
// route going linkdown, and the veth enslaved to it.
#[case(
    snap(&format!("{LINKS}40: docker-sid-runc: <UP,LOWER_UP> state UP\n"), &format!("{ROUTES}172.30.202.0/24 dev docker-sid-runc src 172.30.202.1\n"), "", true),
    snap(
        &format!("{LINKS}40: docker-sid-runc: <NO-CARRIER,UP> state DOWN\n41: vethab@if2: <UP> master docker-sid-runc state UP\n"),
        &format!("{ROUTES}172.30.202.0/24 dev docker-sid-runc src 172.30.202.1 linkdown\n"),
        "",
        true
    ),
    0
)]
// Nor a container's veth pair before it is enslaved and moved.
#[case(
    snap(LINKS, ROUTES, "", true),
    snap(
        &format!("{LINKS}8: veth4872466@veth6ad41c3: <BROADCAST>\n9: veth6ad41c3@veth4872466: <UP>\n"),
        &format!("{ROUTES}fe80::/64 dev veth6ad41c3 proto kernel\n"),
        "",
        true
    ),
    0
)]
// But a link of the suite's own naming is never Docker's.
#[case(
    snap(LINKS, ROUTES, "", true),
    snap(&format!("{LINKS}7: v-eth@if6: <UP>\n"), ROUTES, "", true),
    1
)]
// Its bridge left behind by a daemon that stopped meanwhile, too.
#[case(
    snap(LINKS, ROUTES, "", false),
    snap(LINKS_CONTAINER, ROUTES, "", false),
    0
)]
// Without any Docker on the host, Docker-like names count.
#[case(
    snap(LO, ROUTES, "", false),
    snap(&format!("{LO}9: veth1a2b3c4@if8: <UP>\n"), ROUTES, "", false),
    1
)]
// A route of a link that vanished mid-dump (another run's container).
#[case(
    snap(LINKS, ROUTES, "", true),
    snap(LINKS, &format!("{ROUTES}fe80::/64 dev if544 proto kernel metric 256 linkdown\n"), "", true),
    0
)]
// But a link whose peer is named by index stays a change.
#[case(
    snap(LINKS, ROUTES, "", false),
    snap(&format!("{LINKS}7: v-eth@if6: <UP>\n"), &format!("{ROUTES}10.9.0.0/24 dev v-eth\n"), "", false),
    2
)]
// dockerd running does not excuse anything else.
#[case(
    snap(LINKS, ROUTES, "", true),
    snap(LINKS_CONTAINER, ROUTES, "-A INPUT -j DROP\n", true),
    1
)]
fn host_snapshot_diff(
    #[case] before: HostNetSnapshot,
    #[case] after: HostNetSnapshot,
    #[case] n: usize,
) {
    let d = before.diff(&after);
    assert_eq!(d.len(), n, "{d:?}");
}
