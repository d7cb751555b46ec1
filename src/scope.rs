//! What a mechanism needs from whoever it works for: the tag its resources
//! carry, run-unique names, tagged commands (the helper's included) and a
//! place to register their teardown. `experiment::Ctx` is one; mechanisms
//! (netns, docker) take `&mut impl Scope`, so they never see the harness's
//! types and a body's `Netns::add(ctx, "h")` reads as before.
//!
//! It sits in the mechanisms layer, right above `cleanup` (whose `Tag` and
//! tagged command it builds on); see `src/layers.rs` for the order.

use crate::cleanup::{self, Tag};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// The context a mechanism creates host-global resources in.
pub trait Scope {
    /// The tag every process and resource of this scope carries, so the leak
    /// check and the sweeps find what it made.
    fn tag(&self) -> &Tag;

    /// A run-unique name for a host-global resource (netns, cgroup,
    /// container): the tag, the role, a number no sibling scope repeats.
    fn name(&mut self, role: &str) -> String;

    /// Registers a teardown step that runs when the scope ends, whatever
    /// the body did.
    fn defer(&mut self, what: &str, f: impl FnOnce() + Send + 'static);

    /// A command whose process (and descendants) carry the tag in their
    /// environment, with `LC_ALL=C` and the probe's PATH, and that dies with
    /// the thread that started it.
    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        cleanup::tagged_command(program, self.tag())
    }

    /// The project's own single-threaded helper (`isocheck helper ...`).
    fn helper(&self) -> Command {
        let mut c = self.cmd(helper_path());
        c.arg("helper");
        c
    }
}

/// The counter behind [`Scope::name`], shared by a scope and its forks (a
/// step on a parallel thread) so their names differ by construction: two
/// forks asking for the same role still get two numbers.
#[derive(Clone, Debug, Default)]
pub struct Names(Arc<AtomicU32>);

impl Names {
    /// `<tag>-<role><n>`, with `n` from the shared counter (first is 1).
    pub fn next(&self, tag: &Tag, role: &str) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{tag}-{role}{n}")
    }
}

// The helper binary's path. Here, not in `helper`, because mechanisms start
// the helper (`Netns::view`, `Scope::helper`) and `helper` sits above them.

static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// Front ends set this: the `isocheck` binary itself, or under `cargo test`
/// the path cargo gives in `CARGO_BIN_EXE_isocheck`.
pub fn set_helper_path(p: impl Into<PathBuf>) {
    let _ = HELPER.set(p.into());
}

/// The helper as every experiment should exec it: a path any uid can reach
/// (see `reachable`). Call it once before starting threads: a copy written
/// while another thread forks can make later execs fail with ETXTBSY.
pub fn helper_path() -> PathBuf {
    static REACHABLE: OnceLock<PathBuf> = OnceLock::new();
    REACHABLE
        .get_or_init(|| {
            let orig = HELPER
                .get()
                .cloned()
                .or_else(|| std::env::current_exe().ok())
                .unwrap_or_else(|| PathBuf::from("isocheck"));
            reachable(&orig)
        })
        .clone()
}

/// Whether a process of any uid (e.g. 100000, mapped root of a user
/// namespace) can exec `p`: every ancestor directory searchable by others
/// and the file executable by others.
pub fn any_uid_can_exec(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    if !mode(p).is_ok_and(|m| m & 0o001 != 0) {
        return false;
    }
    p.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .all(|a| mode(a).is_ok_and(|m| m & 0o001 != 0))
}

/// A clone in a 0750 home (Ubuntu's default, GitHub's runners) keeps the
/// binary out of reach of mapped uids: `exec` inside the user namespace fails
/// with EACCES. Then the helper runs from a run-owned directory under the
/// scratch root (a hard link when on the same filesystem, else a copy); the
/// end-of-run sweep removes it like any resource of the run.
fn reachable(orig: &Path) -> PathBuf {
    if any_uid_can_exec(orig) || !nix::unistd::geteuid().is_root() {
        return orig.to_path_buf();
    }
    match place_reachable_copy(orig) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "isocheck: {} is not reachable by other uids and no copy could be made ({e}); \
                 experiments that exec it as a mapped uid will break: build into a directory \
                 with mode 0755 parents (e.g. CARGO_TARGET_DIR=/var/tmp/isocheck-target)",
                orig.display()
            );
            orig.to_path_buf()
        }
    }
}

fn place_reachable_copy(orig: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = cleanup::scratch_root();
    let dir = root.join(format!("{}helper", cleanup::run_tag()));
    std::fs::create_dir_all(&dir)?;
    for d in [&root, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let dest = dir.join("isocheck");
    if std::fs::hard_link(orig, &dest).is_err() {
        let tmp = dir.join(".isocheck.part");
        std::fs::copy(orig, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &dest)?;
    }
    if !any_uid_can_exec(&dest) {
        return Err(std::io::Error::other(format!(
            "{} is not reachable either (is TMPDIR under a private directory?)",
            dest.display()
        )));
    }
    Ok(dest)
}
