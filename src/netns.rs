//! A small typed builder for network labs made of named network namespaces:
//! namespaces play hosts, veth pairs link them, and addresses, routes,
//! forwarding and NAT rules are set inside them with iproute2 and iptables.
//!
//! Everything lives inside namespaces the suite creates, so interface names
//! can keep the seed's names (`v-eth`, `v-ethc`, `eno1`) and nothing touches
//! the real host's links, routes or firewall. A `Netns` is deleted when its
//! handle drops (normal return, failed assertion or panic); its name carries
//! the experiment's tag, so the runner's SIGINT/SIGTERM sweep and the next
//! run's sweep of a SIGKILLed run find it too. Deleting a namespace takes its
//! links, addresses, routes and firewall with it: no other teardown is needed.
//!
//! Kernel state is read two ways: iproute2's JSON (`ip -n NS -j …`, parsed
//! here) and, as the kernel-layer twin, `isocheck helper net-view`, which
//! `setns()`es into the namespace and reads `getifaddrs()`, `/proc/self/net/*`
//! and `/proc/sys/net` directly. `HostNetSnapshot` proves that the real host's
//! network state did not move.

use crate::cleanup::Tag;
use crate::experiment::Ctx;
use crate::process::{run, run_ok, Ran};
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NETNS_DIR: &str = "/run/netns";

// ---------------------------------------------------------------- iproute2 JSON

/// One address of `ip -j addr` (`addr_info`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AddrInfo {
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
}

/// One link of `ip -j link` / `ip -j addr`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
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
    pub dst: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
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

pub fn parse_links(text: &str) -> anyhow::Result<Vec<Link>> {
    parse_json_list(text, "ip -j link/addr")
}

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
    pub transmitted: u32,
    pub received: u32,
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
    pub iface: String,
    /// `a.b.c.d/len`
    pub dst: String,
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

// ---------------------------------------------------------------- iptables

/// `iptables-save` output without what changes on its own: the comment
/// lines (they carry timestamps) and the packet/byte counters of chains.
pub fn normalize_iptables_save(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let l = match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) if l.ends_with(']') => &l[..i],
            _ => l,
        };
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Which iptables binary: the host's default (`iptables`, whatever
/// update-alternatives points to) or an explicit flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Iptables {
    Default,
    Legacy,
    Nft,
}

impl Iptables {
    pub fn command(self) -> &'static str {
        match self {
            Iptables::Default => "iptables",
            Iptables::Legacy => "/usr/sbin/iptables-legacy",
            Iptables::Nft => "/usr/sbin/iptables-nft",
        }
    }

    pub fn save_command(self) -> &'static str {
        match self {
            Iptables::Default => "iptables-save",
            Iptables::Legacy => "/usr/sbin/iptables-legacy-save",
            Iptables::Nft => "/usr/sbin/iptables-nft-save",
        }
    }

    /// `iptables -V`, e.g. `iptables v1.8.9 (nf_tables)`.
    pub fn version(self) -> anyhow::Result<String> {
        Ok(run_ok(crate::process::command(self.command()).arg("-V"))?
            .trim()
            .to_string())
    }

    /// The flavours to exercise: the default one, then the other one when its
    /// binary exists (Debian ships both in the iptables package; the host's
    /// alternatives are never switched, the other binary is called by path).
    pub fn flavours() -> Vec<Iptables> {
        let mut v = vec![Iptables::Default];
        let default_is_nft = Iptables::Default
            .version()
            .map(|s| s.contains("nf_tables"))
            .unwrap_or(true);
        let other = if default_is_nft {
            Iptables::Legacy
        } else {
            Iptables::Nft
        };
        if Path::new(other.command()).exists() {
            v.push(other);
        }
        v
    }
}

// ---------------------------------------------------------------- namespaces

/// `ip -j netns list`.
pub fn netns_list() -> anyhow::Result<Vec<String>> {
    parse_netns_list(&run_ok(
        crate::process::command("ip").args(["-j", "netns", "list"]),
    )?)
}

/// `ip -j addr` of the namespace this process is in (read only).
pub fn own_links() -> anyhow::Result<Vec<Link>> {
    parse_links(&run_ok(
        crate::process::command("ip").args(["-j", "addr", "show"]),
    )?)
}

fn file_inode(p: &Path) -> Option<u64> {
    std::fs::metadata(p)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// A named network namespace (`ip netns add`), deleted when dropped.
pub struct Netns {
    name: String,
    tag: Tag,
    live: bool,
}

impl Netns {
    /// `ip netns add <run-unique name>`; `role` reads as the seed's name
    /// (`ns1`, `h` for the seed's host, `up` for its internet).
    pub fn add(ctx: &mut Ctx, role: &str) -> anyhow::Result<Netns> {
        let name = ctx.name(role);
        run_ok(ctx.cmd("ip").args(["netns", "add", &name]))?;
        let ns = Netns {
            name,
            tag: ctx.tag.clone(),
            live: true,
        };
        // Every `ip -n`, iptables and sysctl step after this trusts that the
        // namespace is a new one: where creating it silently did nothing,
        // refuse before anything touches the host's network.
        let host = crate::namespaces::inode("self", "net")?;
        if ns.inode().is_none_or(|i| i == host) {
            anyhow::bail!(
                "refusing: {} is still the host's network namespace",
                ns.name
            );
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// The namespace's inode (what `/proc/<pid>/ns/net` of its processes shows).
    pub fn inode(&self) -> Option<u64> {
        file_inode(&self.path())
    }

    fn ip_cmd(&self) -> Command {
        let mut c = crate::cleanup::tagged_command("ip", &self.tag);
        c.args(["-n", &self.name]);
        c
    }

    /// `ip -n NS ARGS…`, insisting on success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        run_ok(self.ip_cmd().args(args))
    }

    /// Several `ip` commands in one process (`ip -n NS -batch -`): a lab's
    /// setup costs one fork per namespace, not one per step. iproute2 stops
    /// at the first command that fails and names it.
    pub fn batch(&self, lines: &[String]) -> anyhow::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut c = self.ip_cmd();
        c.args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().context("starting ip -batch")?;
        let script = lines.join("\n") + "\n";
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin"))?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`ip -n {} -batch -` failed: {} (script: {})",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim(),
                lines.join("; ")
            );
        }
        Ok(())
    }

    /// A typed builder of this namespace's links, addresses and routes,
    /// applied in one `ip -batch`.
    pub fn setup(&self) -> Setup<'_> {
        Setup {
            ns: self,
            lines: Vec::new(),
        }
    }

    /// `ip netns exec NS PROG`: a tagged command that runs inside.
    pub fn exec(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = crate::cleanup::tagged_command("ip", &self.tag);
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// `ip netns exec NS isocheck helper OP`.
    pub fn helper(&self, op: &str) -> Command {
        let mut c = self.exec(crate::helper::helper_path());
        c.args(["helper", op]);
        c
    }

    /// Links with their addresses (`ip -n NS -j addr show`).
    pub fn links(&self) -> anyhow::Result<Vec<Link>> {
        parse_links(&self.ip(&["-j", "addr", "show"])?)
    }

    pub fn link(&self, dev: &str) -> anyhow::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.ifname == dev))
    }

    /// The main IPv4 table (`ip -n NS -j route show`).
    pub fn routes(&self) -> anyhow::Result<Vec<Route>> {
        parse_routes(&self.ip(&["-j", "route", "show"])?)
    }

    pub fn up(&self, dev: &str) -> anyhow::Result<&Self> {
        self.ip(&["link", "set", "dev", dev, "up"])?;
        Ok(self)
    }

    /// Writes a `/proc/sys` key inside (e.g. `net/ipv4/ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<&Self> {
        let mut c = crate::cleanup::tagged_command(crate::helper::helper_path(), &self.tag);
        c.args(["helper", "net-sysctl", "--netns", &self.name, key, value]);
        run_ok(&mut c)?;
        Ok(self)
    }

    /// Routes packets between its interfaces (a router).
    pub fn forwarding(&self) -> anyhow::Result<&Self> {
        self.sysctl("net/ipv4/ip_forward", "1")
    }

    /// A tagged command run inside by `setns()` alone (`isocheck helper
    /// net-exec`), for tools that need the namespace's network but not the
    /// remounted /sys of `ip netns exec`: cheaper on a busy machine.
    pub fn enter(&self, prog: &str) -> Command {
        let mut c = crate::cleanup::tagged_command(crate::helper::helper_path(), &self.tag);
        c.args(["helper", "net-exec", "--netns", &self.name, "--", prog]);
        c
    }

    /// `iptables ARGS…` of one flavour inside, insisting on success.
    pub fn iptables(&self, flavour: Iptables, args: &[&str]) -> anyhow::Result<&Self> {
        run_ok(self.enter(flavour.command()).args(args))?;
        Ok(self)
    }

    /// `iptables-save` of one flavour inside, normalised.
    pub fn iptables_save(&self, flavour: Iptables) -> anyhow::Result<String> {
        Ok(normalize_iptables_save(&run_ok(
            &mut self.enter(flavour.save_command()),
        )?))
    }

    /// `ping -c1 ADDR` from inside (the documented command). `-W` bounds a
    /// broken setup only; no assertion waits for it to expire.
    pub fn ping(&self, addr: &str) -> anyhow::Result<Ran> {
        run(self.exec("ping").args(["-c1", "-W5", addr]))
    }

    /// The kernel-layer view from inside (`isocheck helper net-view`).
    pub fn view(&self) -> anyhow::Result<KernelView> {
        let mut c = crate::cleanup::tagged_command(crate::helper::helper_path(), &self.tag);
        c.args(["helper", "net-view", "--netns", &self.name]);
        KernelView::from_helper(&mut c)
    }

    /// `connect()` of a UDP socket from inside, by `setns()` in the helper.
    pub fn udp_connect(&self, to: &str) -> anyhow::Result<UdpConnect> {
        let mut c = crate::cleanup::tagged_command(crate::helper::helper_path(), &self.tag);
        c.args(["helper", "udp-connect", "--netns", &self.name, to]);
        Ok(serde_json::from_str(run_ok(&mut c)?.trim())?)
    }

    /// `ip netns delete` (the seed's step); the handle is spent.
    pub fn delete(mut self) -> anyhow::Result<()> {
        self.live = false;
        run_ok(
            crate::cleanup::tagged_command("ip", &self.tag).args(["netns", "delete", &self.name]),
        )
        .map(|_| ())
    }
}

/// Steps queued for one namespace; nothing happens until `apply`.
pub struct Setup<'a> {
    ns: &'a Netns,
    lines: Vec<String>,
}

impl Setup<'_> {
    fn push(mut self, line: String) -> Self {
        self.lines.push(line);
        self
    }

    /// A veth pair `here` (in this namespace) <-> `there` (in `peer`).
    pub fn veth(self, here: &str, peer: &Netns, there: &str) -> Self {
        let l = format!(
            "link add {here} type veth peer name {there} netns {}",
            peer.name
        );
        self.push(l)
    }

    pub fn addr(self, dev: &str, cidr: &str) -> Self {
        self.push(format!("addr add {cidr} dev {dev}"))
    }

    pub fn up(self, dev: &str) -> Self {
        self.push(format!("link set dev {dev} up"))
    }

    pub fn down(self, dev: &str) -> Self {
        self.push(format!("link set dev {dev} down"))
    }

    /// `route add DST via GW`.
    pub fn route(self, dst: &str, via: &str) -> Self {
        self.push(format!("route add {dst} via {via}"))
    }

    pub fn apply(self) -> anyhow::Result<()> {
        self.ns.batch(&self.lines)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let ok = crate::process::command("ip")
            .args(["netns", "delete", &self.name])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // What the sweeper does: a bind mount of nsfs, then a file.
            let p = self.path();
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&p);
        }
    }
}

// ---------------------------------------------------------------- kernel layer

/// One interface as `getifaddrs()` sees it from inside the namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct KernelIface {
    pub name: String,
    pub up: bool,
    pub ipv4: Vec<String>,
}

/// What `isocheck helper net-view` reports from inside a namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct KernelView {
    /// The inode of the namespace the helper ended up in.
    pub netns_inode: u64,
    pub ifaces: Vec<KernelIface>,
    /// Interface names of `/proc/self/net/dev`.
    pub proc_net_dev: Vec<String>,
    /// `/proc/self/net/route`.
    pub routes: Vec<ProcRoute>,
    /// `/proc/sys/net/ipv4/ip_forward`.
    pub ip_forward: String,
}

impl KernelView {
    pub fn from_helper(c: &mut Command) -> anyhow::Result<KernelView> {
        let out = run_ok(c)?;
        serde_json::from_str(out.trim()).with_context(|| format!("net-view output {out:.300}"))
    }

    pub fn iface(&self, name: &str) -> Option<&KernelIface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.ifaces.iter().map(|i| i.name.clone()).collect()
    }
}

/// The kernel view of the namespace this process is in (read only).
pub fn own_view(ctx: &Ctx) -> anyhow::Result<KernelView> {
    KernelView::from_helper(ctx.helper().arg("net-view"))
}

/// What `connect()` of a UDP socket returned.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct UdpConnect {
    pub ok: bool,
    pub errno: Option<String>,
}

// ---------------------------------------------------------------- host snapshot

/// The real host's network state, to prove that the experiments left it
/// alone: links, routes (v4 and v6), the firewall in every iptables flavour
/// present and the whole nf_tables ruleset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostNetSnapshot {
    pub parts: BTreeMap<String, String>,
}

/// The namespace the host guard snapshots: the real host's (None), or, in
/// the harness's own tests, a namespace standing in for it, so that proving
/// the guard catches a new link never adds one to the real host.
static GUARDED_NS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Points the host guard at a stand-in namespace (tests only), or back.
pub fn guard_namespace(name: Option<String>) {
    *GUARDED_NS.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

/// A host command's stdout; on failure the error carries the command, its
/// status and its stderr (a broken row must say why: a missing module shows
/// there, not in the status).
fn output_of(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let shown = format!("{prog} {}", args.join(" "));
    let ns = GUARDED_NS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut c = match ns {
        Some(ns) => {
            let mut c = crate::process::command("ip");
            c.args(["netns", "exec", &ns, prog]);
            c
        }
        None => crate::process::command(prog),
    };
    let out = c
        .args(args)
        .output()
        .map_err(|e| anyhow!("host snapshot: `{}`: {e}", shown.trim()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(anyhow!(
        "host snapshot: `{}` failed ({}): {}",
        shown.trim(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn dockerd_running() -> bool {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "dockerd")
            })
        })
        .unwrap_or(false)
}

impl HostNetSnapshot {
    /// Takes the snapshot from this (the host's) namespace. Read only.
    pub fn take() -> anyhow::Result<HostNetSnapshot> {
        let mut parts = BTreeMap::new();
        let need =
            |k: &str, prog: &str, args: &[&str]| output_of(prog, args).map(|o| (k.to_string(), o));
        for (k, v) in [
            need("ip -o link", "ip", &["-o", "link"])?,
            need("ip route", "ip", &["route"])?,
            need("ip -6 route", "ip", &["-6", "route"])?,
        ] {
            parts.insert(k, v);
        }
        // Both flavours where both exist (the default is one of them, via
        // update-alternatives); the default alone otherwise.
        let both = [Iptables::Legacy, Iptables::Nft]
            .iter()
            .all(|f| Path::new(f.save_command()).exists());
        for f in [Iptables::Default, Iptables::Legacy, Iptables::Nft] {
            let wanted = if both {
                f != Iptables::Default
            } else {
                f == Iptables::Default
            };
            // Without iptables installed there is no iptables firewall the
            // suite could touch: say so instead of breaking every net row.
            if wanted && crate::host::which(f.save_command()).is_none() {
                parts.insert(f.save_command().to_string(), "(not installed)".into());
            } else if wanted {
                let save = output_of(f.save_command(), &[])?;
                parts.insert(f.save_command().to_string(), normalize_iptables_save(&save));
            }
        }
        if crate::host::which("nft").is_some() {
            let rs = output_of("nft", &["list", "ruleset"])?;
            parts.insert("nft list ruleset".into(), rs);
        }
        // Docker's bridge and its containers' veths live in the host's
        // namespace: while a daemon runs (another section's experiments),
        // their lines may legitimately come and go.
        if dockerd_running() {
            parts.insert("dockerd".into(), "running".into());
        }
        Ok(HostNetSnapshot { parts })
    }

    /// Lines that differ, as `part: -line` / `part: +line`. Empty when equal.
    pub fn diff(&self, after: &HostNetSnapshot) -> Vec<String> {
        // A Docker engine runs, or ran (its bridge stays after it stops: a
        // daemon started and stopped by another section between the two
        // snapshots). The suite's own links never carry Docker's names.
        let has_bridge = |s: &HostNetSnapshot| {
            s.parts
                .get("ip -o link")
                .is_some_and(|l| l.lines().any(|l| mentions_dev(l, "docker0")))
        };
        let docker = [self, after]
            .iter()
            .any(|s| s.parts.contains_key("dockerd") || has_bridge(s));
        let foreign = if docker {
            docker_link_names(self)
                .union(&docker_link_names(after))
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        diff_parts(&self.parts, &after.parts, &|line| {
            foreign.iter().any(|n| mentions_dev(line, n)) || via_vanished_link(line)
        })
    }
}

/// Experiments that overlap in time share one pair of host snapshots: the
/// first to start takes the "before", the last to finish the "after" and
/// compares. Nothing of the host may change while any of them runs, so the
/// comparison covers them all, at a fraction of the forks of one pair per
/// experiment (with one experiment at a time, e.g. under nextest, every
/// experiment is its own span).
struct Span {
    active: usize,
    before: Option<HostNetSnapshot>,
}

static SPAN: std::sync::Mutex<Span> = std::sync::Mutex::new(Span {
    active: 0,
    before: None,
});

/// Joins (or opens) the span of experiments guarded by host snapshots.
pub fn host_span_enter() -> anyhow::Result<()> {
    let mut s = SPAN.lock().unwrap_or_else(|e| e.into_inner());
    if s.active == 0 {
        s.before = Some(HostNetSnapshot::take()?);
    }
    s.active += 1;
    Ok(())
}

/// Leaves the span; the last one out compares and gets the difference
/// (empty when the host is unchanged). `None`: others still run.
pub fn host_span_leave() -> anyhow::Result<Option<Vec<String>>> {
    let mut s = SPAN.lock().unwrap_or_else(|e| e.into_inner());
    s.active = s.active.saturating_sub(1);
    if s.active > 0 {
        return Ok(None);
    }
    let before = s
        .before
        .take()
        .ok_or_else(|| anyhow!("host span without a snapshot"))?;
    // Taken under the lock: a new span cannot start before this one ends.
    let after = HostNetSnapshot::take()?;
    Ok(Some(before.diff(&after)))
}

/// `docker0`, the links enslaved to it, and links named as Docker names a
/// container's veth ends (`veth` + 7 hex digits: a pair is created in the
/// host's namespace before one end is enslaved and the other moved).
fn docker_link_names(s: &HostNetSnapshot) -> BTreeSet<String> {
    let mut v = BTreeSet::from(["docker0".to_string()]);
    let links = s.parts.get("ip -o link").map(String::as_str).unwrap_or("");
    for l in links.lines() {
        let Some(name) = l.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let docker_veth = name
            .strip_prefix("veth")
            .is_some_and(|h| h.len() == 7 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if docker_veth || l.contains(" master docker0 ") {
            v.insert(name.to_string());
        }
    }
    v
}

/// A route printed with `dev ifN`: iproute2 names a device by its index
/// only when the link no longer exists as it dumps the routes (seen: a
/// concurrent run's container veth, removed mid-dump). A link already gone is
/// no lasting change of the host; one that stays is seen by its name.
fn via_vanished_link(line: &str) -> bool {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().is_some_and(|d| {
                d.strip_prefix("if")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            });
        }
    }
    false
}

fn mentions_dev(line: &str, dev: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || c == ':' || c == '@')
        .any(|w| w == dev)
}

/// The set difference of lines per part; `ignore` drops lines of foreign owners.
pub fn diff_parts(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    ignore: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for k in keys.into_iter().filter(|k| k.as_str() != "dockerd") {
        let b = before.get(k).map(String::as_str).unwrap_or("");
        let a = after.get(k).map(String::as_str).unwrap_or("");
        if a == b {
            continue;
        }
        let bl: Vec<&str> = b.lines().filter(|l| !ignore(l)).collect();
        let al: Vec<&str> = a.lines().filter(|l| !ignore(l)).collect();
        if bl == al {
            continue;
        }
        out.extend(
            bl.iter()
                .filter(|l| !al.contains(l))
                .map(|l| format!("{k}: -{l}")),
        );
        out.extend(
            al.iter()
                .filter(|l| !bl.contains(l))
                .map(|l| format!("{k}: +{l}")),
        );
        if out.is_empty() {
            out.push(format!("{k}: lines reordered"));
        }
    }
    out
}

// ---------------------------------------------------------------- helper op replies (the ops: helper/net.rs)

/// What the far end of the UDP probe saw.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct EchoSeen {
    /// The source address of the datagram, as the upstream saw it.
    pub peer: Option<String>,
    /// `sent`, or the errno of sending the answer back.
    pub reply: Option<String>,
    /// Nothing arrived within the safety bound.
    #[serde(default)]
    pub timeout: bool,
}

/// The client side of the probe.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AskAnswer {
    /// The answer's text: the source address the far end saw.
    pub answer: Option<String>,
    pub from: Option<String>,
    pub error: Option<String>,
}

/// Reads one protocol's counters of the namespace a process is in, through
/// `/proc/<pid>/net/snmp` (no process needs to be started).
pub fn snmp_of(pid: i32, proto: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/net/snmp"))
        .with_context(|| format!("reading /proc/{pid}/net/snmp"))?;
    let m = parse_snmp(&t, proto);
    if m.is_empty() {
        bail!("no {proto} counters in /proc/{pid}/net/snmp");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
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
}
