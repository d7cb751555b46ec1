//! Loop devices whose backing file is a suite image: tagged by that file's
//! path (under the run's scratch directory), so a SIGKILLed run's device is
//! found and detached by the next run like any named resource.

use super::*;

/// `(device, backing file)` of every attached loop device whose backing
/// file lies under the suite's scratch root, with the `isoc-…` component of
/// that path (the tag the predicates judge).
pub fn suite_loop_devices() -> Vec<(String, PathBuf, String)> {
    let root = scratch_root();
    let mut out = Vec::new();
    for dev in dir_names(Path::new("/sys/block")) {
        if !dev.starts_with("loop") {
            continue;
        }
        let Ok(b) = std::fs::read_to_string(format!("/sys/block/{dev}/loop/backing_file")) else {
            continue;
        };
        // A deleted image still names its old path, with this suffix.
        let backing = PathBuf::from(b.trim().trim_end_matches(" (deleted)"));
        let Ok(rest) = backing.strip_prefix(&root) else {
            continue;
        };
        let tag = rest
            .components()
            .filter_map(|c| c.as_os_str().to_str())
            .find(|c| c.starts_with(PREFIX));
        if let Some(tag) = tag {
            out.push((format!("/dev/{dev}"), backing.clone(), tag.to_string()));
        }
    }
    out
}

/// LOOP_CLR_FD on the device; one already detached is not an error.
pub fn detach_loop(dev: &str) -> Result<(), String> {
    const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
    let f = std::fs::File::open(dev).map_err(|e| format!("opening {dev}: {e}"))?;
    // SAFETY: LOOP_CLR_FD takes no argument, on a loop device this opened.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), LOOP_CLR_FD, 0) };
    drop(f);
    match nix::errno::Errno::result(r) {
        Ok(_) | Err(nix::errno::Errno::ENXIO) => {}
        Err(e) => return Err(format!("LOOP_CLR_FD {dev}: {e}")),
    }
    // A device someone still has open (a mount whose namespace is being
    // torn down, a udev probe) is only marked autoclear and detaches at
    // that last close: wait for it, bounded.
    let backing = format!(
        "/sys/block/{}/loop/backing_file",
        dev.trim_start_matches("/dev/")
    );
    let gone = crate::process::wait_until(std::time::Duration::from_secs(5), || {
        !Path::new(&backing).exists()
    });
    if gone {
        Ok(())
    } else {
        Err(format!("{dev} still attached 5 s after LOOP_CLR_FD"))
    }
}
