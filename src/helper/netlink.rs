//! Per-netns views for the sysfs and netlink row (LTP netns_sysfs,
//! netns_netlink): an RTMGRP_LINK listener, and a sysfs mounted inside.
//! Both run in the namespace their process was put in (`Netns::helper`).

use super::{die, refuse_in_host_ns, reply};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Reply of `nl-links`: the link events the listener received.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkEvents {
    /// (`NEWLINK` | `DELLINK`, interface name), in arrival order.
    pub events: Vec<(String, String)>,
}

const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
/// `struct nlmsghdr` and `struct ifinfomsg` sizes.
const NLMSG_HDR: usize = 16;
const IFINFO: usize = 16;

fn listener() -> Result<OwnedFd, String> {
    // SAFETY: plain socket and bind calls on a zeroed sockaddr_nl.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_LINK;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        if libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        ) != 0
        {
            return Err(format!(
                "bind RTMGRP_LINK: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(fd)
    }
}

/// The link events of one datagram (several messages may share it).
fn parse(buf: &[u8], out: &mut Vec<(String, String)>) {
    let u16at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let mut off = 0;
    while off + NLMSG_HDR <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        let kind = match u16at(buf, off + 4) {
            RTM_NEWLINK => "NEWLINK",
            RTM_DELLINK => "DELLINK",
            _ => "",
        };
        let msg = &buf[off..off + len];
        let mut a = NLMSG_HDR + IFINFO;
        while !kind.is_empty() && a + 4 <= msg.len() {
            let (alen, atype) = (u16at(msg, a) as usize, u16at(msg, a + 2));
            if alen < 4 || a + alen > msg.len() {
                break;
            }
            if atype == IFLA_IFNAME {
                let name = &msg[a + 4..a + alen];
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                out.push((kind.into(), String::from_utf8_lossy(name).into_owned()));
            }
            a += (alen + 3) & !3;
        }
        off += (len + 3) & !3;
    }
}

/// `nl-links`: joins RTMGRP_LINK in this netns, prints `ready`, and when
/// stdin closes replies every link event queued meanwhile (the kernel
/// queues a multicast before the change's syscall returns).
pub(super) fn op_links(_args: &[String]) -> i32 {
    let fd = match listener() {
        Ok(f) => f,
        Err(e) => return die(e),
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..10_000 {
        // SAFETY: reads into the buffer within its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
        parse(&buf[..n as usize], &mut events);
    }
    reply(&LinkEvents { events })
}

/// `sysfs-net --dir D`: in a private mount ns, mounts a sysfs (which shows
/// the mounting process's netns) on D and lists D/class/net.
pub(super) fn op_sysfs_net(args: &[String]) -> i32 {
    let Some(dir) = args
        .windows(2)
        .find(|w| w[0] == "--dir")
        .map(|w| w[1].clone())
    else {
        return die("sysfs-net --dir D");
    };
    match sysfs_list(&dir) {
        Ok(v) => reply(&v),
        Err(e) => die(e),
    }
}

fn sysfs_list(dir: &str) -> Result<Vec<String>, String> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare mnt: {e}"))?;
    refuse_in_host_ns("mnt")?;
    refuse_in_host_ns("net")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    mount(
        Some("sysfs"),
        dir,
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount sysfs on {dir}: {e}"))?;
    super::sorted_names(&format!("{dir}/class/net"))
}
