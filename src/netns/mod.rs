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
use crate::process::{run, run_ok, Ran};
use crate::scope::{helper_path, Scope};
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `ip netns add` binds named namespaces; the sweeper looks here for leftovers.
pub const NETNS_DIR: &str = "/run/netns";

mod host;
mod iptables;
mod parse;
#[cfg(test)]
mod tests;

pub use host::*;
pub use iptables::*;
pub use parse::*;

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
    pub fn add(scope: &mut impl Scope, role: &str) -> anyhow::Result<Netns> {
        let name = scope.name(role);
        run_ok(scope.cmd("ip").args(["netns", "add", &name]))?;
        let ns = Netns {
            name,
            tag: scope.tag().clone(),
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

    /// The run-unique name, for `ip -n` and `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file under `/run/netns`, for `setns` and inode checks.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// The namespace's inode (what `/proc/<pid>/ns/net` of its processes shows).
    pub fn inode(&self) -> Option<u64> {
        file_inode(&self.path())
    }

    /// `ip` inside by our own `setns()`, proven to have taken before exec
    /// (see `enter`), rather than `ip -n`: every link, address and route
    /// change then happens only in a namespace that is not the run's, and
    /// no `/sys` remount is needed for netlink.
    fn ip_cmd(&self) -> Command {
        self.enter("ip")
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
        // `ip netns exec` makes `/` a slave and remounts /sys, in a mount
        // namespace of its own when its unshare(2) works.
        crate::namespaces::private_mounts(&mut c);
        c
    }

    /// `isocheck helper OP` inside, by `setns()` (see `enter`): the helper
    /// ops need the namespace's network, not `ip netns exec`'s remounted /sys.
    pub fn helper(&self, op: &str) -> Command {
        let mut c = self.enter(helper_path());
        c.args(["helper", op]);
        c
    }

    /// Links with their addresses (`ip -n NS -j addr show`).
    pub fn links(&self) -> anyhow::Result<Vec<Link>> {
        parse_links(&self.ip(&["-j", "addr", "show"])?)
    }

    /// The link named `dev`; None when the namespace has no such device.
    pub fn link(&self, dev: &str) -> anyhow::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.ifname == dev))
    }

    /// The main IPv4 table (`ip -n NS -j route show`).
    pub fn routes(&self) -> anyhow::Result<Vec<Route>> {
        parse_routes(&self.ip(&["-j", "route", "show"])?)
    }

    /// Brings `dev` up at once (not queued), returning self for chaining.
    pub fn up(&self, dev: &str) -> anyhow::Result<&Self> {
        self.ip(&["link", "set", "dev", dev, "up"])?;
        Ok(self)
    }

    /// Writes a `/proc/sys` key inside (e.g. `net/ipv4/ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<&Self> {
        let mut c = crate::cleanup::tagged_command(helper_path(), &self.tag);
        c.args(["helper", "net-sysctl", "--netns", &self.name, key, value]);
        run_ok(&mut c)?;
        Ok(self)
    }

    /// Routes packets between its interfaces (a router).
    pub fn forwarding(&self) -> anyhow::Result<&Self> {
        self.sysctl("net/ipv4/ip_forward", "1")
    }

    /// A tagged command run inside by `setns()` alone, for tools that need
    /// the namespace's network but not the remounted /sys of `ip netns
    /// exec`. The setns happens between fork and exec: one process, where
    /// `isocheck helper net-exec` (which does the same) took two. When the
    /// namespace cannot be opened the helper runs, to say why.
    pub fn enter(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let Ok(ns) = std::fs::File::open(self.path()) else {
            let mut c = crate::cleanup::tagged_command(helper_path(), &self.tag);
            c.args(["helper", "net-exec", "--netns", &self.name, "--"])
                .arg(prog);
            return c;
        };
        let mut c = crate::cleanup::tagged_command(prog, &self.tag);
        let host_net = crate::namespaces::host_inode("net");
        // SAFETY: setns(2) and stat(2) are plain syscalls, async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                crate::namespaces::ensure_left_host_net(host_net)
            });
        }
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
        let mut c = crate::cleanup::tagged_command(helper_path(), &self.tag);
        c.args(["helper", "net-view", "--netns", &self.name]);
        KernelView::from_helper(&mut c)
    }

    /// `connect()` of a UDP socket from inside, by `setns()` in the helper.
    pub fn udp_connect(&self, to: &str) -> anyhow::Result<UdpConnect> {
        let mut c = crate::cleanup::tagged_command(helper_path(), &self.tag);
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

    /// Queues `addr add CIDR dev DEV`.
    pub fn addr(self, dev: &str, cidr: &str) -> Self {
        self.push(format!("addr add {cidr} dev {dev}"))
    }

    /// Queues `link set dev DEV up`.
    pub fn up(self, dev: &str) -> Self {
        self.push(format!("link set dev {dev} up"))
    }

    /// Queues `link set dev DEV down`.
    pub fn down(self, dev: &str) -> Self {
        self.push(format!("link set dev {dev} down"))
    }

    /// `route add DST via GW`.
    pub fn route(self, dst: &str, via: &str) -> Self {
        self.push(format!("route add {dst} via {via}"))
    }

    /// Runs the queued steps as one `ip -batch`, so a namespace is set up in one process.
    pub fn apply(self) -> anyhow::Result<()> {
        self.ns.batch(&self.lines)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        // What `ip netns delete` does (and the sweeper): the nsfs bind
        // mount, then the file; in this process, not one more `ip`.
        let p = self.path();
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&p);
    }
}

// ---------------------------------------------------------------- kernel layer

/// One interface as `getifaddrs()` sees it from inside the namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct KernelIface {
    /// The interface name.
    pub name: String,
    /// `IFF_UP` as `getifaddrs()` reports it.
    pub up: bool,
    /// `a.b.c.d/len` of each IPv4 address.
    pub ipv4: Vec<String>,
}

/// What `isocheck helper net-view` reports from inside a namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct KernelView {
    /// The inode of the namespace the helper ended up in.
    pub netns_inode: u64,
    /// Every interface `getifaddrs()` lists, independent of iproute2's view.
    pub ifaces: Vec<KernelIface>,
    /// Interface names of `/proc/self/net/dev`.
    pub proc_net_dev: Vec<String>,
    /// `/proc/self/net/route`.
    pub routes: Vec<ProcRoute>,
    /// `/proc/sys/net/ipv4/ip_forward`.
    pub ip_forward: String,
}

impl KernelView {
    /// Runs `isocheck helper net-view` (inside a namespace) and reads its JSON.
    pub fn from_helper(c: &mut Command) -> anyhow::Result<KernelView> {
        let out = run_ok(c)?;
        serde_json::from_str(out.trim()).with_context(|| format!("net-view output {out:.300}"))
    }

    /// The interface named `name`, if the namespace shows one.
    pub fn iface(&self, name: &str) -> Option<&KernelIface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    /// Interface names in `getifaddrs()` order, for comparison with iproute2's and /proc's.
    pub fn names(&self) -> Vec<String> {
        self.ifaces.iter().map(|i| i.name.clone()).collect()
    }
}

/// The kernel view of the namespace this process is in (read only).
pub fn own_view(scope: &impl Scope) -> anyhow::Result<KernelView> {
    KernelView::from_helper(scope.helper().arg("net-view"))
}

/// What `connect()` of a UDP socket returned.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct UdpConnect {
    /// Whether `connect()` succeeded.
    pub ok: bool,
    /// The errno's name (e.g. `ENETUNREACH`) when it failed.
    pub errno: Option<String>,
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
    /// The address the answer came from; None when none came.
    pub from: Option<String>,
    /// The errno's name when sending or receiving failed (e.g. a timeout).
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
