//! Files the suite writes for the person who ran it belong to that person.
//!
//! Under `sudo` (a GitHub runner, a laptop) the suite runs as root but writes
//! into the user's tree: `~/.cache/isocheck`, `target/tmp/isocheck-*.json`,
//! the reports named on the command line. Left root-owned, they break the
//! user's next step (`mkdir ~/.cache/pip`, `cargo clean`). So a file or
//! directory the suite creates is handed to `SUDO_UID`/`SUDO_GID` when the
//! directory it lands in belongs to that user: a report written into
//! `/root` or `/var/log` stays root's.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The uid and gid that invoked `sudo`, when running as root through it.
pub fn invoking_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    parse_sudo_ids(
        std::env::var("SUDO_UID").ok().as_deref(),
        std::env::var("SUDO_GID").ok().as_deref(),
    )
}

/// `SUDO_UID`/`SUDO_GID` as numbers; root invoking sudo needs no hand-over.
pub fn parse_sudo_ids(uid: Option<&str>, gid: Option<&str>) -> Option<(u32, u32)> {
    let uid: u32 = uid?.trim().parse().ok()?;
    let gid: u32 = gid?.trim().parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

/// Gives `path` to the invoking user if its parent directory is theirs.
pub fn hand_over(path: &Path) {
    let Some((uid, gid)) = invoking_user() else {
        return;
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::metadata(parent).is_ok_and(|m| m.uid() == uid) {
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
    fn sudo_ids_parse_and_root_needs_no_hand_over() {
        assert_eq!(parse_sudo_ids(Some("1001"), Some("118")), Some((1001, 118)));
        assert_eq!(parse_sudo_ids(Some("0"), Some("0")), None);
        assert_eq!(parse_sudo_ids(None, Some("1")), None);
        assert_eq!(parse_sudo_ids(Some("x"), Some("1")), None);
    }
}
