//! The seed lab: masquerading ns1 behind h towards an upstream namespace,
//! in each iptables flavour the host has.

use super::*;

pub(super) const UPSTREAM: &str = "203.0.113.8";
pub(super) const ROUTER_UP: &str = "198.51.100.1";
pub(super) const ECHO_AT: &str = "203.0.113.8:7";

/// The seed's whole topology: the pair, plus h's uplink `eno1`
/// (198.51.100.1/24) to the upstream namespace (198.51.100.2/24, 203.0.113.8
/// on lo), h's default route through it, forwarding on in h. The upstream
/// has no route back to 10.200.1.0/24, as the internet has none to a
/// private network.
pub(super) fn seed_lab(ctx: &mut Ctx) -> anyhow::Result<(Netns, Netns, Netns)> {
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

pub(super) const MASQUERADE: &[&str] = &[
    "POSTROUTING",
    "-s",
    "10.200.1.0/255.255.255.0",
    "-o",
    "eno1",
    "-j",
    "MASQUERADE",
];
pub(super) const FORWARD_IN: &[&str] = &["FORWARD", "-i", "eno1", "-o", "v-eth", "-j", "ACCEPT"];
pub(super) const FORWARD_OUT: &[&str] = &["FORWARD", "-o", "eno1", "-i", "v-eth", "-j", "ACCEPT"];
/// The seed's own -D line for the second FORWARD rule names the options in
/// the other order; iptables matches the rule, not the text.
pub(super) const FORWARD_OUT_SEED_DELETE: &[&str] =
    &["FORWARD", "-i", "v-eth", "-o", "eno1", "-j", "ACCEPT"];

pub(super) fn with_op<'a>(
    op: &'a str,
    table: Option<&'a str>,
    rule: &'a [&'a str],
) -> Vec<&'a str> {
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
pub(super) struct Probe {
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

pub(super) fn rest_of(sp: &mut Spawned) -> String {
    let mut s = String::new();
    while let Ok(l) = sp.read_line() {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// The upstream's UDP echo (`helper udp-echo` on ECHO_AT), once it is ready
/// and proved to be inside the upstream namespace.
fn start_echo(up: &Netns) -> anyhow::Result<Spawned> {
    let mut echo = Spawned::start(
        up.helper("udp-echo")
            .args([ECHO_AT, "--timeout-ms", "5000"]),
    )?;
    let ready = echo.read_line()?;
    anyhow::ensure!(ready == "ready", "udp-echo said {ready:?}");
    anyhow::ensure!(
        crate::namespaces::inode(&echo.pid().to_string(), "net").ok() == up.inode(),
        "the echo process is not in the upstream namespace"
    );
    Ok(echo)
}

/// A bound for a `ping -c1 -W5` that neither gets an answer nor times out.
const PING_SAFETY: std::time::Duration = std::time::Duration::from_secs(60);

/// One ICMP counter (`/proc/PID/net/snmp`) of the namespace PID is in.
fn icmp_counter(pid: i32, k: &str) -> anyhow::Result<i64> {
    netns::snmp_of(pid, "Icmp")?
        .get(k)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no Icmp {k} counter"))
}

/// `ping 203.0.113.8` from ns1 (the seed's step) and a UDP probe whose far
/// end reports the source address it saw. Absence is proved by the far end,
/// never by waiting: the upstream's ICMP counters show the echo request
/// arrived and whether a reply left; the UDP echo reports the source and
/// whether its answer could be sent (ENETUNREACH: no route back).
pub(super) fn probe_upstream(ns1: &Netns, up: &Netns) -> anyhow::Result<Probe> {
    let mut echo = start_echo(up)?;
    let epid = echo.pid();
    let icmp = |k: &str| icmp_counter(epid, k);
    let (in0, out0) = (icmp("InEchos")?, icmp("OutEchoReps")?);
    let mut ping = Spawned::start(ns1.exec("ping").args(["-c1", "-W5", UPSTREAM]))?;
    // Until the request is counted or ping has given up (5 s after it sent,
    // or at once on "unreachable"): ping's own bound, not a clock started
    // before it, which a busy TCG guest outran. PING_SAFETY only covers a
    // ping that never ends.
    let ping_pid = ping.pid();
    wait_until(PING_SAFETY, || {
        icmp("InEchos").is_ok_and(|n| n > in0) || !crate::process::is_running(ping_pid)
    });
    let arrived = icmp("InEchos")? > in0;
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

pub(super) fn flavour_key(version: &str) -> &'static str {
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
pub(super) fn other_flavour_usable(ctx: &mut Ctx, h: &Netns, flavour: Iptables, key: &str) -> bool {
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

pub(super) fn nat_masquerade(ctx: &mut Ctx, v: Variant) -> Outcome {
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
        check_probe(ctx, key, &version, &p)?;
    }
    Ok(())
}

/// What masquerading must show on one flavour: the upstream saw the router's
/// address, its answer came back to ns1, and ping crossed one router.
fn check_probe(ctx: &mut Ctx, key: &str, version: &str, p: &Probe) -> Outcome {
    let seen_ip = p
        .seen
        .peer
        .as_deref()
        .and_then(|s| s.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string());
    // The probe's source port is the kernel's pick for this run.
    ctx.measure(&format!("{key}.probe"), p);
    ctx.observe(&format!("{key}.upstream_saw_source"), &seen_ip);
    let answered = p
        .answer
        .as_ref()
        .and_then(|a| a.answer.as_deref())
        .and_then(|s| s.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string());
    ctx.observe(&format!("{key}.answer_names_source"), &answered);
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
    Ok(())
}
