//! Files the suite writes for the person who ran it belong to that person.
//!
//! Under `sudo` (a GitHub runner, a laptop) the suite runs as root but writes
//! into the user's tree: `~/.cache/isocheck`, `target/tmp/isocheck-*.json`,
//! the reports named on the command line. Left root-owned, they break the
//! user's next step (`mkdir ~/.cache/pip`, `cargo clean`). So, under sudo, a
//! file or directory the suite creates takes the owner and group of the
//! directory it lands in when that directory is not root's: a report written
//! into `/root` or `/var/log` stays root's.
//!
//! The directory, not `SUDO_UID`, names the heir: a cargo runner of `sudo -E`
//! wraps both the test binary and (through assert_cmd) the `isocheck` it
//! starts, and the inner sudo, called by root, sets `SUDO_UID=0`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A directory for what the suite keeps between runs and executes (a
/// build of the seed's program, a busybox rootfs): the running user's,
/// writable by no one else, or None (then nothing is kept). Root's is
/// `/var/cache/isocheck/SUB` (under sudo too: root execs what it holds).
pub fn private_cache(sub: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let uid = nix::unistd::geteuid();
    let dir = if uid.is_root() {
        std::path::PathBuf::from("/var/cache/isocheck").join(sub)
    } else {
        let home = std::env::var_os("HOME")?;
        std::path::PathBuf::from(home)
            .join(".cache/isocheck")
            .join(sub)
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let private = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.uid() == uid.as_raw() && m.mode() & 0o022 == 0)
    };
    (private(&dir) && dir.parent().is_some_and(private)).then_some(dir)
}

/// The entry of cache `sub` for `key` built from `inputs`: named by a hash
/// of the key and of each input file's identity (path, size, mtime, inode),
/// so a changed gcc, header or busybox makes a new entry. None when an input
/// is missing or there is no private cache.
pub fn cache_entry(sub: &str, key: &str, inputs: &[&Path]) -> Option<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    for f in inputs {
        let m = std::fs::metadata(f).ok()?;
        (f, m.len(), m.mtime(), m.mtime_nsec(), m.ino()).hash(&mut h);
    }
    Some(private_cache(sub)?.join(format!("{:016x}", h.finish())))
}

/// Fills a cache entry whole: `fill` writes a directory beside it, which is
/// renamed into place, so a concurrent run sees a complete entry or none.
/// Best effort: on any failure nothing is kept (the caller builds afresh).
pub fn cache_fill(entry: &Path, fill: impl FnOnce(&Path) -> bool) -> bool {
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    let made = fill(&tmp) && std::fs::rename(&tmp, entry).is_ok();
    if !made {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    made
}

/// Whether this process is root through sudo (at any depth).
pub fn under_sudo() -> bool {
    nix::unistd::geteuid().is_root() && std::env::var_os("SUDO_UID").is_some()
}

/// Who inherits a new entry in a directory owned by `uid:gid`: nobody when
/// the directory is root's.
pub fn heir(uid: u32, gid: u32) -> Option<(u32, u32)> {
    (uid != 0).then_some((uid, gid))
}

/// Gives `path` to the owner of its parent directory, under sudo.
pub fn hand_over(path: &Path) {
    if !under_sudo() {
        return;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(m) = std::fs::metadata(parent) else {
        return;
    };
    if let Some((uid, gid)) = heir(m.uid(), m.gid()) {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
}

/// `create_dir_all`, handing each directory it creates over as above.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            hand_over(dir);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `std::fs::write`, then `hand_over`.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    std::fs::write(path, contents)?;
    hand_over(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_directory_hands_over_and_roots_does_not() {
        assert_eq!(heir(1001, 118), Some((1001, 118)));
        assert_eq!(heir(0, 0), None);
        assert_eq!(heir(0, 1001), None);
    }
}
