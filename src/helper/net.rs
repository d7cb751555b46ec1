//! Network-namespace ops: look at, configure and probe a namespace from
//! inside it (setns by name under /run/netns), with no packet to the host.

use super::{die, exec, refuse_in_host_ns};
use crate::netns::{
    parse_proc_net_dev, parse_proc_route, AskAnswer, EchoSeen, KernelIface, KernelView, UdpConnect,
    NETNS_DIR,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// Splits a leading `--netns NAME` off and enters that namespace.
fn enter_netns_arg(args: &[String]) -> Result<&[String], String> {
    match args {
        [flag, name, rest @ ..] if flag == "--netns" => {
            let p = Path::new(NETNS_DIR).join(name);
            let f = std::fs::File::open(&p).map_err(|e| format!("opening {}: {e}", p.display()))?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns({}): {e}", p.display()))?;
            Ok(rest)
        }
        _ => Ok(args),
    }
}

fn errno_name(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
        .unwrap_or_else(|| e.to_string())
}

fn print_json(v: serde_json::Value) {
    println!("{v}");
    let _ = std::io::stdout().flush();
}

/// `net-view [--netns NAME]`: getifaddrs(), /proc/self/net/{dev,route} and
/// ip_forward of the namespace the process is (or was put) in.
pub(super) fn op_net_view(args: &[String]) -> i32 {
    if let Err(e) = enter_netns_arg(args) {
        return die(e);
    }
    let mut ifaces: BTreeMap<String, KernelIface> = BTreeMap::new();
    match nix::ifaddrs::getifaddrs() {
        Ok(it) => {
            for a in it {
                let e = ifaces
                    .entry(a.interface_name.clone())
                    .or_insert(KernelIface {
                        name: a.interface_name.clone(),
                        up: false,
                        ipv4: Vec::new(),
                    });
                e.up |= a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
                let v4 = a
                    .address
                    .as_ref()
                    .and_then(|s| s.as_sockaddr_in())
                    .map(|s| s.ip());
                let mask = a
                    .netmask
                    .as_ref()
                    .and_then(|s| s.as_sockaddr_in())
                    .map(|s| s.ip());
                if let (Some(ip), Some(m)) = (v4, mask) {
                    e.ipv4.push(format!("{ip}/{}", u32::from(m).count_ones()));
                }
            }
        }
        Err(e) => return die(format!("getifaddrs: {e}")),
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let view = KernelView {
        netns_inode: crate::namespaces::inode("self", "net").unwrap_or(0),
        ifaces: ifaces.into_values().collect(),
        proc_net_dev: parse_proc_net_dev(&read("/proc/self/net/dev")),
        routes: parse_proc_route(&read("/proc/self/net/route")),
        ip_forward: read("/proc/sys/net/ipv4/ip_forward").trim().to_string(),
    };
    print_json(serde_json::to_value(view).unwrap_or_default());
    0
}

/// `net-sysctl --netns NAME KEY VALUE`: writes /proc/sys/KEY inside (the
/// net sysctls are per namespace, chosen by the writer's namespace).
pub(super) fn op_net_sysctl(args: &[String]) -> i32 {
    let rest = match enter_netns_arg(args) {
        Ok(r) => r,
        Err(e) => return die(e),
    };
    let [key, value] = rest else {
        return die("net-sysctl [--netns NAME] KEY VALUE");
    };
    if key.contains("..") {
        return die("bad key");
    }
    // A sysctl of the host's own namespace would change the real host.
    if let Err(e) = refuse_in_host_ns("net") {
        return die(e);
    }
    match std::fs::write(Path::new("/proc/sys").join(key), value) {
        Ok(()) => 0,
        Err(e) => die(format!("writing /proc/sys/{key}: {e}")),
    }
}

/// `net-exec --netns NAME -- CMD…`: setns() into the namespace, then exec.
pub(super) fn op_net_exec(args: &[String]) -> i32 {
    let rest = match enter_netns_arg(args) {
        Ok(r) => r,
        Err(e) => return die(e),
    };
    match rest.split_first() {
        Some((dd, cmd)) if dd == "--" && !cmd.is_empty() => exec(cmd),
        _ => die("net-exec --netns NAME -- CMD…"),
    }
}

/// `udp-connect [--netns NAME] ADDR:PORT`: what connect(2) of a UDP socket
/// says (a route lookup, no packet sent).
pub(super) fn op_udp_connect(args: &[String]) -> i32 {
    let rest = match enter_netns_arg(args) {
        Ok(r) => r,
        Err(e) => return die(e),
    };
    let Some(Ok(to)) = rest.first().map(|s| s.parse::<SocketAddr>()) else {
        return die("udp-connect [--netns NAME] ADDR:PORT");
    };
    let r = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(to));
    let out = UdpConnect {
        ok: r.is_ok(),
        errno: r.err().map(|e| errno_name(&e)),
    };
    print_json(serde_json::to_value(out).unwrap_or_default());
    0
}

fn timeout_arg(rest: &[String]) -> Duration {
    rest.windows(2)
        .find(|w| w[0] == "--timeout-ms")
        .and_then(|w| w[1].parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5))
}

/// `udp-echo ADDR:PORT [--timeout-ms MS]`: answers each datagram with the
/// source address it came from, and prints (one JSON line per datagram) what
/// it saw and whether the answer could be sent (`ENETUNREACH`: no route
/// back). Prints `ready` once bound. It stays up (so that its
/// `/proc/<pid>/net` keeps showing the namespace) until the experiment kills
/// it, or until nothing arrived for the timeout, which only bounds a broken
/// setup.
pub(super) fn op_udp_echo(args: &[String]) -> i32 {
    let Some(Ok(at)) = args.first().map(|s| s.parse::<SocketAddr>()) else {
        return die("udp-echo ADDR:PORT [--timeout-ms MS]");
    };
    let sock = match UdpSocket::bind(at) {
        Ok(s) => s,
        Err(e) => return die(format!("bind {at}: {e}")),
    };
    let _ = sock.set_read_timeout(Some(timeout_arg(args)));
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 512];
    loop {
        let seen = match sock.recv_from(&mut buf) {
            Ok((_, peer)) => {
                let r = sock.send_to(peer.to_string().as_bytes(), peer);
                EchoSeen {
                    peer: Some(peer.to_string()),
                    reply: Some(
                        r.map(|_| "sent".to_string())
                            .unwrap_or_else(|e| errno_name(&e)),
                    ),
                    timeout: false,
                }
            }
            Err(_) => EchoSeen {
                peer: None,
                reply: None,
                timeout: true,
            },
        };
        let done = seen.timeout;
        print_json(serde_json::to_value(seen).unwrap_or_default());
        if done {
            return 0;
        }
    }
}

/// `udp-ask ADDR:PORT [--timeout-ms MS]`: sends one datagram, prints the
/// answer. The timeout only bounds a broken setup: the experiments stop
/// waiting as soon as the far end reports it could not answer.
pub(super) fn op_udp_ask(args: &[String]) -> i32 {
    let Some(Ok(to)) = args.first().map(|s| s.parse::<SocketAddr>()) else {
        return die("udp-ask ADDR:PORT [--timeout-ms MS]");
    };
    let r = (|| -> std::io::Result<(String, String)> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(timeout_arg(args)))?;
        s.send_to(b"who am i", to)?;
        let mut buf = [0u8; 512];
        let (n, from) = s.recv_from(&mut buf)?;
        Ok((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            from.to_string(),
        ))
    })();
    let out = match r {
        Ok((answer, from)) => AskAnswer {
            answer: Some(answer),
            from: Some(from),
            error: None,
        },
        Err(e) => AskAnswer {
            answer: None,
            from: None,
            error: Some(errno_name(&e)),
        },
    };
    print_json(serde_json::to_value(out).unwrap_or_default());
    0
}
