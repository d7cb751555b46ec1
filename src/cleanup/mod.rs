//! Run-unique names, the leak check and the sweeper.
//!
//! Every host-global resource of the suite carries a tag in its name
//! (`isoc-<run>-<n>`): network namespaces (`/run/netns/isoc-…`), cgroups
//! (`<hierarchy>/isocheck/isoc-…`), scratch directories and their mounts
//! (`/tmp/isocheck/isoc-…`), Docker objects (label `isocheck.tag`), POSIX
//! message queues (`/isoc-…`), SysV shm segments (a key cannot carry a name:
//! the key's top byte marks the suite's, the segment's first bytes the tag,
//! see [`create_tagged_shm`]), and processes (environment
//! `ISOCHECK_TAG=isoc-…`, inherited by descendants).
//! So the same scan serves three purposes:
//! - the leak check after each experiment (its own tag),
//! - cleanup on SIGINT/SIGTERM (the whole run),
//! - removing what a run killed with SIGKILL left (runs whose lock is free).
//!
//! A run is alive while it holds `flock` on `/run/isocheck/<run>.lock`; the
//! kernel drops the lock when the process dies however it dies, so a second
//! run started at the same moment never sweeps the first one's resources.

use std::fmt;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

mod ipc;

pub use ipc::{create_tagged_shm, suite_shm_ids, SHM_KEY_FAMILIES};
use ipc::{mqueue_names, remove_mqueue, remove_shm, tagged_shm};

/// The environment variable that carries a process's tag, so the leak check and the sweeper can find it.
pub const ENV_TAG: &str = "ISOCHECK_TAG";
const PREFIX: &str = "isoc-";
const LOCK_DIR: &str = "/run/isocheck";

/// A name prefix (`isoc-<run>-<n>`, or `isoc-<run>-` for a whole run) that an experiment's processes and resources carry; `owns` decides what is whose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    /// The tag as it appears in names and in `ISOCHECK_TAG`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a resource name belongs to this tag (or, for a run prefix,
    /// to this run): `isoc-ab-1` owns `isoc-ab-1` and `isoc-ab-1-h1`, never
    /// `isoc-ab-10`.
    pub fn owns(&self, name: &str) -> bool {
        name == self.0
            || name
                .strip_prefix(self.0.as_str())
                .is_some_and(|rest| rest.starts_with('-') || self.0.ends_with('-'))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Run {
    id: String,
    _lock: Option<File>,
}

static RUN: OnceLock<Run> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(1);
/// Set when a signal starts the run's cleanup: no tagged command starts after
/// it, so the sweep reaches a state no worker thread adds to any more.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!("{:x}{:02x}", std::process::id(), nanos & 0xff);
        let lock = take_lock(&id);
        Run { id, _lock: lock }
    })
}

/// Takes the run's lock. Retried, because other runs act on the same
/// directory at the same moment: one removes the (empty) lock directory at
/// its end, a sweeper unlinks lock files it finds free. A lock on a file
/// that is no longer linked protects nothing (the next look at the path
/// finds it free and sweeps this run), so the lock counts only while the
/// path still names the locked file.
fn take_lock(id: &str) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let path = Path::new(LOCK_DIR).join(format!("{id}.lock"));
    for _ in 0..100 {
        let _ = std::fs::create_dir_all(LOCK_DIR);
        let Ok(f) = File::create(&path) else {
            continue;
        };
        // Held: a sweeper about to unlink what it took for a dead run's file.
        if !flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        }
        let same = match (f.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Some(f);
        }
    }
    eprintln!(
        "isocheck: could not take the run lock {}: a concurrent run may sweep this run's resources",
        path.display()
    );
    None
}

/// Removes a dead run's lock file, holding its lock while unlinking so that a
/// run taking the same file at that moment notices (see `take_lock`).
fn remove_dead_lock(name: &str) {
    let path = Path::new(LOCK_DIR).join(name);
    if let Ok(f) = File::open(&path) {
        if flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// This process's run id.
pub fn run_id() -> &'static str {
    &run().id
}

/// The prefix every resource of this run carries.
pub fn run_tag() -> Tag {
    Tag(format!("{PREFIX}{}-", run_id()))
}

/// A fresh tag for one experiment run.
pub fn new_tag() -> Tag {
    Tag(format!(
        "{PREFIX}{}-{}",
        run_id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// `flock(2)`; true when the lock was taken.
pub fn flock(f: &File, op: i32) -> bool {
    // SAFETY: a plain syscall on a descriptor the File keeps open.
    unsafe { libc::flock(f.as_raw_fd(), op) == 0 }
}

/// Whether the run `id` still holds its lock (this process's run always does).
pub fn run_is_alive(id: &str) -> bool {
    if id == run_id() {
        return true;
    }
    let Ok(f) = File::open(Path::new(LOCK_DIR).join(format!("{id}.lock"))) else {
        return false;
    };
    !flock(&f, libc::LOCK_SH | libc::LOCK_NB)
}

/// The run id inside a resource name, if it is one of the suite's.
pub fn run_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, _) = rest.split_once('-')?;
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// The shared parent of every run's scratch directories, under the temp directory.
pub fn scratch_root() -> PathBuf {
    std::env::temp_dir().join("isocheck")
}

/// Makes an experiment's scratch directory. Retried: another run removes
/// the shared (empty) root at its end, possibly between our two mkdirs.
pub fn make_scratch(p: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..20 {
        last = std::fs::create_dir_all(p);
        if last.is_ok() {
            break;
        }
    }
    last
}

/// Removes a scratch directory, refusing (with an error) while anything is mounted under it.
pub fn remove_scratch(p: &Path) -> std::io::Result<()> {
    // A mount left on a scratch directory must never let remove_dir_all walk
    // into the mounted tree (a bind of /usr/bin, say).
    if mount_points().iter().any(|m| m.starts_with(p)) {
        return Err(std::io::Error::other("mounted"));
    }
    std::fs::remove_dir_all(p)
}

/// A command that carries `tag` in its environment and is killed when the
/// thread that spawned it goes away.
pub fn tagged_command(program: impl AsRef<std::ffi::OsStr>, tag: &Tag) -> Command {
    let mut c = crate::process::command(program);
    c.env(ENV_TAG, tag.as_str());
    c.env(
        crate::namespaces::ENV_HOST_NS,
        crate::namespaces::host_ns_env(),
    );
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if SHUTTING_DOWN.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(libc::ECANCELED));
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // util-linux's namespace tools mount on their own (`--mount-proc`, the
    // propagation of `/`, `nsenter -m`'s target): each starts in a mount
    // namespace proven not to be the run's, so one whose unshare(2) or
    // setns(2) silently did nothing cannot reach the host's table.
    let base = std::path::Path::new(c.get_program())
        .file_name()
        .map(|n| n.to_owned());
    if base
        .as_deref()
        .is_some_and(|n| n == "unshare" || n == "nsenter")
    {
        crate::namespaces::private_mounts(&mut c);
    }
    c
}

/// One thing the suite made on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// A process carrying the suite's tag in its environment.
    Process {
        /// Its pid in the host's pid namespace.
        pid: i32,
        /// Its `comm`, for the message.
        comm: String,
        /// The tag found in its environment.
        tag: String,
    },
    /// A mount point with a suite name among its path components.
    Mount(PathBuf),
    /// A named network namespace (its name under `/run/netns`).
    Netns(String),
    /// A cgroup directory under the suite's parent.
    Cgroup(PathBuf),
    /// A scratch directory that teardown did not remove.
    Scratch(PathBuf),
    /// A leftover of a kind a mechanism registered (see [`register_kind`]),
    /// by its id in that mechanism's terms.
    Registered {
        /// The mechanism that registered the kind, which knows how to remove it.
        kind: &'static LeftoverKind,
        /// The leftover's id in that mechanism's terms (a container id, say).
        id: String,
    },
    /// A SysV shm segment in the host's ipc namespace, by shmid.
    Shm {
        /// The shmid.
        id: i32,
        /// The segment's IPC key, in one of the suite's key families (`SHM_KEY_FAMILIES`).
        key: u32,
        /// The tag recorded for the segment, which decides whose it is.
        tag: String,
    },
    /// A POSIX message queue in the host's ipc namespace (its name, no slash).
    Mqueue(String),
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Process { pid, comm, .. } => write!(f, "process {pid} ({comm})"),
            Leftover::Mount(p) => write!(f, "mount {}", p.display()),
            Leftover::Netns(n) => write!(f, "netns {n}"),
            Leftover::Cgroup(p) => write!(f, "cgroup {}", p.display()),
            Leftover::Scratch(p) => write!(f, "directory {}", p.display()),
            Leftover::Registered { kind, id } => write!(f, "{} {id}", kind.noun),
            Leftover::Shm { id, key, .. } => write!(f, "SysV shm segment {key:#010x} (id {id})"),
            Leftover::Mqueue(n) => write!(f, "POSIX message queue /{n}"),
        }
    }
}

/// A kind of leftover that a mechanism outside this module makes (Docker
/// containers): the mechanism registers how to list and remove it, so that
/// the sweeper finds it without depending on the mechanism.
pub struct LeftoverKind {
    /// What one is called in messages, before its id ("docker container").
    pub noun: &'static str,
    /// Every one on the host that carries a suite tag: (id, tag).
    pub list: fn() -> Vec<(String, String)>,
    /// Removes one by id; an already gone one is not an error.
    pub remove: fn(&str) -> Result<(), String>,
    /// At the end of the run, after the tagged ones are removed: what the
    /// whole run shares (the run's image); returns errors.
    pub end_of_run: fn() -> Vec<String>,
}

impl fmt::Debug for LeftoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun)
    }
}

impl PartialEq for LeftoverKind {
    fn eq(&self, other: &Self) -> bool {
        self.noun == other.noun
    }
}

impl Eq for LeftoverKind {}

static KINDS: std::sync::Mutex<Vec<&'static LeftoverKind>> = std::sync::Mutex::new(Vec::new());

/// Makes the sweeper, the leak check and the end-of-run cleanup see a kind
/// of leftover (once per kind; a second registration of the same noun is
/// ignored).
pub fn register_kind(kind: &'static LeftoverKind) {
    let mut k = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    if !k.contains(&kind) {
        k.push(kind);
    }
}

fn kinds() -> Vec<&'static LeftoverKind> {
    KINDS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(crate::host::unescape_mount(m)))
        .collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The suite's cgroup parents: `<hierarchy>/isocheck` for every hierarchy.
pub fn cgroup_parents() -> Vec<PathBuf> {
    let host = crate::host::HostFacts::get();
    let mut roots: Vec<PathBuf> = host.cgroup.v1_mounts.values().cloned().collect();
    roots.extend(host.cgroup.v2_mount.clone());
    roots.sort();
    roots.dedup();
    roots.into_iter().map(|r| r.join("isocheck")).collect()
}

/// Processes whose `ISOCHECK_TAG` the predicate accepts.
fn tagged_processes(accept: &dyn Fn(&str) -> bool) -> Vec<Leftover> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    let needle = format!("{ENV_TAG}=");
    for pid in dir_names(Path::new("/proc"))
        .iter()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let tag = env
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(needle.as_str()));
        if let Some(tag) = tag.filter(|t| accept(t)) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.push(Leftover::Process {
                pid,
                comm: comm.trim().to_string(),
                tag: tag.to_string(),
            });
        }
    }
    out
}

/// SIGKILLs every process one experiment run started (its process tree:
/// the tag is inherited through fork and exec).
pub fn kill_processes(tag: &Tag) {
    let _ = remove(tagged_processes(&|n| tag.owns(n)));
}

/// Everything on the host whose name the predicate accepts.
pub fn find(accept: &dyn Fn(&str) -> bool) -> Vec<Leftover> {
    let mut out = tagged_processes(accept);
    for m in mount_points() {
        let ours = m
            .components()
            .filter_map(|c| c.as_os_str().to_str())
            .any(|c| c.starts_with(PREFIX) && accept(c));
        if ours {
            out.push(Leftover::Mount(m));
        }
    }
    for n in dir_names(Path::new("/run/netns")) {
        if accept(&n) {
            out.push(Leftover::Netns(n));
        }
    }
    for parent in cgroup_parents() {
        for n in dir_names(&parent) {
            if accept(&n) && parent.join(&n).is_dir() {
                out.push(Leftover::Cgroup(parent.join(n)));
            }
        }
    }
    for n in dir_names(&scratch_root()) {
        if accept(&n) {
            out.push(Leftover::Scratch(scratch_root().join(n)));
        }
    }
    for kind in kinds() {
        out.extend(
            (kind.list)()
                .into_iter()
                .filter(|(_, tag)| accept(tag))
                .map(|(id, _)| Leftover::Registered { kind, id }),
        );
    }
    out.extend(
        tagged_shm()
            .into_iter()
            .filter(|(_, _, tag)| accept(tag))
            .map(|(id, key, tag)| Leftover::Shm { id, key, tag }),
    );
    out.extend(
        mqueue_names()
            .into_iter()
            .filter(|n| accept(n))
            .map(Leftover::Mqueue),
    );
    out
}

/// Leftovers of one experiment (after its teardown ran).
pub fn leaks(tag: &Tag) -> Vec<Leftover> {
    find(&|n| tag.owns(n))
}

/// Removes leftovers: processes first (they hold mounts and cgroups), then
/// containers, mounts (deepest first), namespaces, cgroups, scratch dirs.
pub fn remove(mut items: Vec<Leftover>) -> Vec<String> {
    let mut errors = Vec::new();
    let rank = |l: &Leftover| match l {
        Leftover::Process { .. } => 0,
        Leftover::Registered { .. } => 1,
        Leftover::Mount(_) => 2,
        Leftover::Netns(_) => 3,
        Leftover::Cgroup(_) => 4,
        Leftover::Scratch(_) => 5,
        Leftover::Shm { .. } | Leftover::Mqueue(_) => 6,
    };
    items.sort_by_key(|l| (rank(l), std::cmp::Reverse(format!("{l}").len())));
    for item in items {
        let r = match &item {
            Leftover::Process { pid, .. } => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL)
                    .or_else(|e| {
                        if e == nix::errno::Errno::ESRCH {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| e.to_string())
                    // SIGKILL is delivered asynchronously: wait for the exit,
                    // or the next scan still finds the process.
                    .map(|()| {
                        crate::process::wait_until(std::time::Duration::from_secs(2), || {
                            !crate::process::is_running(*pid)
                        });
                    })
            }
            Leftover::Registered { kind, id } => (kind.remove)(id),
            Leftover::Mount(p) => {
                nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).map_err(|e| e.to_string())
            }
            Leftover::Netns(n) => {
                let p = Path::new("/run/netns").join(n);
                let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
                // An experiment's own teardown may have removed it meanwhile.
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                    _ => Ok(()),
                }
            }
            Leftover::Cgroup(p) => remove_cgroup_tree(p),
            Leftover::Scratch(p) => remove_scratch(p).map_err(|e| e.to_string()),
            Leftover::Shm { id, .. } => remove_shm(*id),
            Leftover::Mqueue(n) => remove_mqueue(n),
        };
        if let Err(e) = r {
            errors.push(format!("{item}: {e}"));
        }
    }
    errors
}

/// Kills a cgroup's tasks and removes it, children before parents.
pub fn remove_cgroup_tree(p: &Path) -> Result<(), String> {
    for _ in 0..200 {
        let mut dirs = vec![p.to_path_buf()];
        let mut i = 0;
        while i < dirs.len() {
            let d = dirs[i].clone();
            for n in dir_names(&d) {
                if d.join(&n).is_dir() {
                    dirs.push(d.join(n));
                }
            }
            i += 1;
        }
        for d in &dirs {
            // A frozen v1 task keeps a SIGKILL pending until it is thawed
            // (v2 lets it die); thawing a group that is not frozen is a no-op.
            if d.join("freezer.state").exists() {
                let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            }
            if d.join("cgroup.freeze").exists() {
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            }
            for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
        let all_gone = dirs
            .iter()
            .rev()
            .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists());
        if all_gone {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err("cgroup still busy after killing its tasks".into())
}

/// Removes everything that runs no longer alive left behind (a run killed
/// with SIGKILL cannot clean up after itself). Returns what was removed.
pub fn sweep_dead_runs() -> Vec<Leftover> {
    let found = find(&|n| run_of(n).is_some_and(|id| !run_is_alive(id)));
    let errors = remove(found.clone());
    for e in errors {
        eprintln!("isocheck: could not remove a leftover of an earlier run: {e}");
    }
    for parent in cgroup_parents() {
        let _ = std::fs::remove_dir(parent);
    }
    // Lock files of dead runs.
    for n in dir_names(Path::new(LOCK_DIR)) {
        if n.strip_suffix(".lock").is_some_and(|id| id != run_id()) {
            remove_dead_lock(&n);
        }
    }
    found
}

/// Removes everything of this run (on SIGINT/SIGTERM, and at the end).
pub fn sweep_this_run() -> Vec<String> {
    let tag = run_tag();
    let mut errors = Vec::new();
    // Killing a pid-namespace init takes its namespace with it; loop until quiet.
    for _ in 0..5 {
        let found = find(&|n| tag.owns(n));
        if found.is_empty() {
            break;
        }
        errors = remove(found);
    }
    // What a kind removes once its tagged objects are gone (the run's
    // Docker image, once its containers are).
    for kind in kinds() {
        errors.extend((kind.end_of_run)());
    }
    // The shared `<hierarchy>/isocheck` parents outlive each experiment
    // (removing them mid-run races with parallel creates); drop them once
    // the run is over. A parent still holding another run's groups stays.
    for parent in cgroup_parents() {
        let _ = std::fs::remove_dir(parent);
    }
    errors
}

/// Drops the run's lock file at a clean exit.
pub fn release_run() {
    let _ = std::fs::remove_file(Path::new(LOCK_DIR).join(format!("{}.lock", run_id())));
    let _ = std::fs::remove_dir(LOCK_DIR);
    // Empty unless another run is still using it.
    let _ = std::fs::remove_dir(scratch_root());
}

/// The signal that interrupted the run (0: none yet).
static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal (SIGINT, SIGTERM, SIGHUP) that interrupted this run, if one did.
/// From then on, results are not real results: an experiment whose processes
/// the cleanup killed would read as broken.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// How long the front end gets, after the cleanup, to write its interrupted
/// report and exit 128 + signal itself before the signal thread does it.
const FRONT_END_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Installs SIGINT/SIGTERM/SIGHUP handling: stop starting commands, sweep
/// this run (which ends its experiments' waits), and let the front end
/// report what finished and exit 128 + signal, as a shell would report it.
pub fn install_signal_cleanup() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            SHUTTING_DOWN.store(true, Ordering::SeqCst);
            INTERRUPTED.store(sig, Ordering::SeqCst);
            eprintln!("isocheck: caught signal {sig}, removing this run's namespaces, mounts, cgroups and processes");
            for e in sweep_this_run() {
                eprintln!("isocheck: cleanup: {e}");
            }
            std::thread::sleep(FRONT_END_GRACE);
            release_run();
            std::process::exit(128 + sig);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_ownership_is_exact() {
        let t = Tag("isoc-ab-1".into());
        assert!(t.owns("isoc-ab-1"));
        assert!(t.owns("isoc-ab-1-h1"));
        assert!(!t.owns("isoc-ab-10"));
        let run = Tag("isoc-ab-".into());
        assert!(run.owns("isoc-ab-10-x"));
        assert!(!run.owns("isoc-abc-1"));
    }

    #[test]
    fn run_of_extracts_the_run_id() {
        assert_eq!(run_of("isoc-1f2e-3-h1"), Some("1f2e"));
        assert_eq!(run_of("isocheck"), None);
        assert_eq!(run_of("isoc-zz-1"), None);
    }
}
