//! What the host offers, probed once per process.
//!
//! Capabilities are probed by trying them where that is cheap and safe (a user
//! namespace in a throwaway child), never by reading module lists: on these
//! machines `CONFIG_VETH=y` with no `/lib/modules` would read as "no veth".

use crate::tools::Tool;
use serde::Serialize;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Which cgroup versions and controllers the host mounts; decides which cgroup rows can run and how.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CgroupLayout {
    /// "v1", "v2", "hybrid" or "none".
    pub layout: String,
    /// Controllers on v1 hierarchies.
    pub v1: Vec<String>,
    /// Controllers enabled at the root of the v2 hierarchy.
    pub v2: Vec<String>,
    /// Mount point of each v1 controller.
    #[serde(skip)]
    pub v1_mounts: BTreeMap<String, PathBuf>,
    /// Mount point of the cgroup2 hierarchy.
    #[serde(skip)]
    pub v2_mount: Option<PathBuf>,
}

impl CgroupLayout {
    /// Whether a controller is available on either version, for a need check.
    pub fn has(&self, ctrl: &str) -> bool {
        self.v1.iter().chain(self.v2.iter()).any(|c| c == ctrl)
    }

    /// Parses `/proc/self/mountinfo` text; `v2_controllers` reads the
    /// `cgroup.controllers` file of a cgroup2 mount point.
    pub fn from_mountinfo(mountinfo: &str, v2_controllers: impl Fn(&Path) -> String) -> Self {
        let mut out = CgroupLayout::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mnt = match pre.split_whitespace().nth(4) {
                Some(m) => PathBuf::from(unescape_mount(m)),
                None => continue,
            };
            let mut post = post.split_whitespace();
            let fstype = post.next().unwrap_or("");
            let _source = post.next();
            let opts = post.next().unwrap_or("");
            match fstype {
                "cgroup" => {
                    for o in opts.split(',') {
                        if matches!(o, "rw" | "ro") || o.contains('=') || o.starts_with("no") {
                            continue;
                        }
                        if !out.v1.iter().any(|c| c == o) && is_controller_name(o) {
                            out.v1.push(o.to_string());
                            out.v1_mounts.insert(o.to_string(), mnt.clone());
                        }
                    }
                }
                "cgroup2" if out.v2_mount.is_none() => {
                    out.v2 = v2_controllers(&mnt)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    out.v2_mount = Some(mnt);
                }
                _ => {}
            }
        }
        out.v1.sort();
        out.v2.sort();
        out.layout = match (out.v1.is_empty(), out.v2_mount.is_some()) {
            (false, true) => "hybrid",
            (false, false) => "v1",
            (true, true) => "v2",
            (true, false) => "none",
        }
        .to_string();
        out
    }
}

fn is_controller_name(o: &str) -> bool {
    matches!(
        o,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "net_cls"
            | "net_prio"
            | "blkio"
            | "perf_event"
            | "hugetlb"
            | "pids"
            | "rdma"
            | "misc"
    )
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses "6.18.44-fc-v782" into (6, 18, 44).
pub fn parse_kernel_version(release: &str) -> (u32, u32, u32) {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let mut next = || nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (next(), next(), next())
}

/// What the running host offers, probed once: every need check and the report's host block read it.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The release's first three numbers, for `needs` of a minimum kernel.
    #[serde(skip)]
    pub kernel_version: (u32, u32, u32),
    /// Effective uid 0.
    pub is_root: bool,
    /// The cgroup layout from /proc/self/mountinfo.
    pub cgroup: CgroupLayout,
    /// Tool name -> path, for the tools found on PATH.
    #[serde(skip)]
    pub tool_paths: BTreeMap<&'static str, PathBuf>,
    /// Why user namespaces cannot be created here, if they cannot.
    pub userns_blocked: Option<String>,
    /// /usr/include/seccomp.h exists, so the seed's seccomp.c compiles.
    pub libseccomp_dev: bool,
    /// Docker server version when an engine answers.
    pub docker: Option<String>,
    /// Why no engine answered, for the ignored rows' reason; None when one did.
    #[serde(skip)]
    pub docker_reason: Option<String>,
    /// The page size in bytes (v1 memory limits round to it).
    pub page_size: u64,
    /// The running kernel's build options, when a config can be read.
    #[serde(skip)]
    pub kconfig: Option<crate::kconfig::KernelConfig>,
}

static HOST: OnceLock<HostFacts> = OnceLock::new();

impl HostFacts {
    /// The probe, run once per process.
    pub fn get() -> &'static HostFacts {
        HOST.get_or_init(HostFacts::probe)
    }

    fn probe() -> HostFacts {
        let uts = nix::sys::utsname::uname().ok();
        let kernel = uts
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = CgroupLayout::from_mountinfo(&mountinfo, |p| {
            std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default()
        });
        let tool_paths = Tool::ALL
            .iter()
            .filter_map(|t| which(t.command()).map(|p| (t.command(), p)))
            .collect();
        let (docker, docker_reason) = crate::dockerapi::probe_engine();
        HostFacts {
            kconfig: crate::kconfig::KernelConfig::load(&kernel),
            kernel_version: parse_kernel_version(&kernel),
            kernel,
            is_root: nix::unistd::geteuid().is_root(),
            cgroup,
            tool_paths,
            userns_blocked: probe_userns(),
            libseccomp_dev: Path::new("/usr/include/seccomp.h").exists(),
            docker,
            docker_reason,
            page_size: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64,
        }
    }

    /// Whether the tool was found on PATH at probe time.
    pub fn has_tool(&self, t: Tool) -> bool {
        self.tool_paths.contains_key(t.command())
    }

    /// None when an engine answered, else the reason the Docker rows are ignored.
    pub fn docker_unmet(&self) -> Option<String> {
        if self.docker.is_some() {
            // Asked by every Docker row: the answer cannot change within a run.
            static APPARMOR: OnceLock<Option<String>> = OnceLock::new();
            APPARMOR
                .get_or_init(|| {
                    let param = std::fs::read_to_string(crate::apparmor::ENABLED_PARAM).ok();
                    let parser = which("apparmor_parser").is_some();
                    crate::apparmor::engine_unmet(param.as_deref(), parser)
                })
                .clone()
        } else {
            Some(
                self.docker_reason
                    .clone()
                    .unwrap_or_else(|| "needs docker".into()),
            )
        }
    }

    /// First line of each tool's version output, for the report and `doctor`.
    /// Asked once per process (`Session::start` asks early, on a thread of
    /// its own, so the run's end does not wait for it).
    pub fn tool_versions(&self) -> BTreeMap<String, String> {
        static VERSIONS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
        VERSIONS
            .get_or_init(|| self.ask_versions(|t| !t.for_kernel_scripts_only()))
            .clone()
    }

    /// Every tool's version, the kernel scripts' too, for `doctor`.
    pub fn all_tool_versions(&self) -> BTreeMap<String, String> {
        let mut all = self.tool_versions();
        all.extend(self.ask_versions(Tool::for_kernel_scripts_only));
        all
    }

    /// Every tool at once: one after another they took ~0.3 s (python3's
    /// pyenv shim alone is a dozen bash execs), on the run's critical path.
    fn ask_versions(&self, which: fn(Tool) -> bool) -> BTreeMap<String, String> {
        let asked: Vec<_> = Tool::ALL
            .iter()
            .filter(|t| which(**t) && self.has_tool(**t))
            .map(|t| {
                let child = crate::process::command(t.command())
                    .args(t.version_args())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn();
                (t.command().to_string(), child)
            })
            .collect();
        asked
            .into_iter()
            .map(|(name, child)| {
                let out = child.and_then(|c| c.wait_with_output()).ok();
                let text = out
                    .map(|o| {
                        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                        s.push_str(&String::from_utf8_lossy(&o.stderr));
                        s
                    })
                    .unwrap_or_default();
                let line = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.to_lowercase().starts_with("usage"))
                    .unwrap_or("present")
                    .to_string();
                (name, line)
            })
            .collect()
    }
}

/// Where `cmd` is found on the suite's search path
/// (`process::search_path`), the very path its commands start it from.
pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(&crate::process::search_path())
        .map(|d| d.join(cmd))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Tries `unshare(CLONE_NEWUSER)` in a throwaway child: sysctls, AppArmor
/// (Ubuntu 24.04) and seccomp can each forbid it, and only trying tells.
fn probe_userns() -> Option<String> {
    let mut cmd = Command::new("/bin/true");
    // SAFETY: the closure only makes a raw syscall between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("creating a user namespace fails here (status {s})")),
        Err(e) => {
            let mut why = format!("creating a user namespace fails here: {e}");
            if let Ok(v) = std::fs::read_to_string("/proc/sys/user/max_user_namespaces") {
                if v.trim() == "0" {
                    why.push_str(
                        "; user.max_user_namespaces is 0: sysctl -w user.max_user_namespaces=15000",
                    );
                }
            }
            if std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .map(|v| v.trim() == "1")
                .unwrap_or(false)
            {
                why.push_str("; AppArmor restricts user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)");
            }
            Some(why)
        }
    }
}

/// Whether the suite runs in ci/kernel-run.sh's qemu guest (see `process::in_qemu_guest`).
pub use crate::process::in_qemu_guest;
