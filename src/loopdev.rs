//! Loop devices the suite attaches to its own image files (kept under an
//! experiment's scratch directory), by the kernel's ioctls: no tool needed.
//! The backing file's path names the experiment's tag, so the leak check,
//! the signal cleanup and the next run's sweep find a device left attached
//! (`/sys/block/loopN/loop/backing_file`) and detach it.

use crate::cleanup;
use anyhow::{bail, Context};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// The block major of loop devices.
pub const LOOP_MAJOR: u32 = 7;

/// An attached loop device.
#[derive(Debug, Clone)]
pub struct Loop {
    /// Its minor (`/dev/loopN`).
    pub minor: u32,
    /// `/dev/loopN`.
    pub dev: PathBuf,
}

/// Attaches `file` (read-only) to a free loop device. Another process may
/// take the free one between asking and attaching (EBUSY): retried.
pub fn attach(file: &Path) -> anyhow::Result<Loop> {
    let ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .context("/dev/loop-control")?;
    let backing = std::fs::File::open(file).with_context(|| file.display().to_string())?;
    for _ in 0..20 {
        // SAFETY: ioctls on fds owned here, with integer arguments.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            bail!("LOOP_CTL_GET_FREE: {}", std::io::Error::last_os_error());
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .open(&dev)
            .with_context(|| dev.display().to_string())?;
        let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) };
        if r == 0 {
            return Ok(Loop {
                minor: n as u32,
                dev,
            });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            bail!("LOOP_SET_FD {}: {e}", dev.display());
        }
    }
    bail!("no free loop device after 20 tries (others kept taking them)")
}

/// Detaches `/dev/loopN`; one already detached is not an error.
pub fn detach(dev: &str) -> Result<(), String> {
    let f = match std::fs::File::open(dev) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{dev}: {e}")),
    };
    // SAFETY: an ioctl without argument on an fd owned here.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _, 0) };
    if r == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
        e => Err(format!("detaching {dev}: {e}")),
    }
}

/// The tag a backing file names: the first component under the scratch
/// root, when it is one of the suite's names.
pub fn tag_of_backing(backing: &str, root: &Path) -> Option<String> {
    let rest = Path::new(backing.trim_end_matches(" (deleted)"))
        .strip_prefix(root)
        .ok()?;
    let first = rest.components().next()?.as_os_str().to_str()?;
    cleanup::run_of(first).map(|_| first.to_string())
}

/// The suite's loop devices: (`/dev/loopN`, tag).
pub fn suite_loops() -> Vec<(String, String)> {
    let root = cleanup::scratch_root();
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("loop")?;
            let b = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            Some((format!("/dev/{name}"), tag_of_backing(b.trim(), &root)?))
        })
        .collect()
}

static LOOPS: cleanup::LeftoverKind = cleanup::LeftoverKind {
    noun: "loop device",
    list: suite_loops,
    remove: detach,
    end_of_run: Vec::new,
};

/// Lets the leak check and the sweeps find the suite's loop devices.
pub fn register_leftovers() {
    cleanup::register_kind(&LOOPS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/tmp/isocheck/isoc-6a2e8b-2/disk.img", Some("isoc-6a2e8b-2"))]
    #[case(
        "/tmp/isocheck/isoc-6a2e8b-2/disk.img (deleted)",
        Some("isoc-6a2e8b-2")
    )]
    #[case("/tmp/isocheck/other/disk.img", None)]
    #[case("/var/lib/snapd/snaps/core.snap", None)]
    fn finds_the_tag_of_a_backing_file(#[case] b: &str, #[case] want: Option<&str>) {
        assert_eq!(
            tag_of_backing(b, Path::new("/tmp/isocheck")).as_deref(),
            want
        );
    }
}
