//! The sweeper: leftovers of dead runs go, a live run's stay.

use super::*;

// ---- the sweeper (host-global state: one at a time, across processes) ----

#[test]
#[file_serial(isocheck_host)]
// Its live directory carries this process's run tag (see below).
#[serial(run_tag)]
fn leftovers_of_a_dead_run_are_swept_and_a_live_runs_are_not() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let dead = isocheck::cleanup::scratch_root().join("isoc-dead1-1-x");
    std::fs::create_dir_all(&dead).unwrap();
    let mine =
        isocheck::cleanup::scratch_root().join(format!("{}9-x", isocheck::cleanup::run_tag()));
    std::fs::create_dir_all(&mine).unwrap();
    let removed = isocheck::cleanup::sweep_dead_runs();
    assert!(
        removed
            .iter()
            .any(|l| l.to_string().contains("isoc-dead1-1-x")),
        "{removed:?}"
    );
    assert!(!dead.exists());
    assert!(mine.exists(), "a live run's resource was swept");
    std::fs::remove_dir(&mine).unwrap();
}

/// A POSIX message queue made on the host, as the ipc section makes one.
fn host_mqueue(name: &str) {
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
    // SAFETY: a NUL-terminated name; default attributes.
    let fd = unsafe { libc::mq_open(c.as_ptr(), flags, 0o600, std::ptr::null::<libc::mq_attr>()) };
    assert!(fd >= 0, "mq_open: {}", std::io::Error::last_os_error());
    // SAFETY: closes the descriptor just opened.
    unsafe { libc::mq_close(fd) };
}

fn mqueue_exists(name: &str) -> bool {
    let c = std::ffi::CString::new(format!("/{name}")).unwrap();
    // SAFETY: a NUL-terminated name, closed at once.
    let fd = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
    if fd >= 0 {
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::mq_close(fd) };
    }
    fd >= 0
}

fn shm_key_exists(key: u32) -> bool {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    isocheck::cleanup::suite_shm_ids(&text)
        .iter()
        .any(|(_, k)| *k == key)
}

/// What a SIGKILLed ipc.sysv-isolated leaves: a SysV segment (found by its
/// key family and the tag written in it) and a POSIX message queue (by
/// name). A dead run's are swept, a live run's are kept and its leak check
/// sees them.
#[test]
#[file_serial(isocheck_host)]
// Its live objects carry this process's run tag, which the runner tests
// check is clean after each of them.
#[serial(run_tag)]
fn ipc_objects_of_a_dead_run_are_swept_and_a_live_runs_are_not() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    use isocheck::cleanup::{create_tagged_shm, leaks, run_tag, sweep_dead_runs, Leftover};
    let low = std::process::id() & 0xffff;
    let (dead_key, live_key) = (0x16fe_0000 | low, 0x16fd_0000 | low);
    let dead = "isoc-dead2-1";
    let live = format!("{}9", run_tag());
    create_tagged_shm(dead_key, dead).unwrap();
    create_tagged_shm(live_key, &live).unwrap();
    host_mqueue(&format!("{dead}-inside"));
    host_mqueue(&live);
    let mine = leaks(&run_tag());
    assert!(
        mine.iter()
            .any(|l| matches!(l, Leftover::Shm { key, .. } if *key == live_key)),
        "{mine:?}"
    );
    assert!(mine.contains(&Leftover::Mqueue(live.clone())), "{mine:?}");
    let removed = sweep_dead_runs();
    assert!(
        removed
            .iter()
            .any(|l| matches!(l, Leftover::Shm { tag, .. } if tag == dead)),
        "{removed:?}"
    );
    assert!(removed.contains(&Leftover::Mqueue(format!("{dead}-inside"))));
    assert!(!shm_key_exists(dead_key) && !mqueue_exists(&format!("{dead}-inside")));
    assert!(
        shm_key_exists(live_key) && mqueue_exists(&live),
        "a live run's ipc object was swept"
    );
    assert!(isocheck::cleanup::remove(mine).is_empty());
    assert!(!shm_key_exists(live_key) && !mqueue_exists(&live));
}

/// Another run's lock, held: its file survives a sweep (and its resources
/// with it); released, both go.
#[test]
#[file_serial(isocheck_host)]
fn a_held_run_lock_keeps_its_run_alive_through_a_sweep() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _ = isocheck::cleanup::run_id(); // this process's own lock first
    let lock_path = std::path::Path::new("/run/isocheck/beef01.lock");
    let lock = std::fs::File::create(lock_path).unwrap();
    assert!(isocheck::cleanup::flock(
        &lock,
        libc::LOCK_EX | libc::LOCK_NB
    ));
    let dir = isocheck::cleanup::scratch_root().join("isoc-beef01-1-x");
    std::fs::create_dir_all(&dir).unwrap();
    isocheck::cleanup::sweep_dead_runs();
    let (file_kept, dir_kept) = (lock_path.exists(), dir.exists());
    drop(lock);
    isocheck::cleanup::sweep_dead_runs();
    let (file_gone, dir_gone) = (!lock_path.exists(), !dir.exists());
    let _ = std::fs::remove_dir(&dir);
    assert!(
        file_kept && dir_kept,
        "a live run's lock or scratch dir was swept"
    );
    assert!(
        file_gone && dir_gone,
        "a dead run's lock or scratch dir stayed"
    );
}

/// What a run killed while it held a loop device leaves (still attached):
/// the next run's sweep finds it by the tag in its backing file's path and
/// detaches it before it removes the dead run's scratch directory.
#[test]
#[file_serial(isocheck_host)]
fn a_loop_device_of_a_dead_run_is_detached_by_the_sweep() {
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/dev/loop-control").exists() {
        eprintln!("skipping: needs root and loop devices (/dev/loop-control)");
        return;
    }
    use isocheck::loopdev::{attach, register_leftovers, suite_loops};
    register_leftovers();
    let dir = isocheck::cleanup::scratch_root().join("isoc-dead3-1-x");
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("loop.img");
    std::fs::write(&img, vec![0u8; 64 * 1024]).unwrap();
    let dev = attach(&img).unwrap().dev.display().to_string();
    let listed = suite_loops();
    assert!(
        listed.contains(&(dev.clone(), "isoc-dead3-1-x".to_string())),
        "{listed:?}"
    );
    let removed = isocheck::cleanup::sweep_dead_runs();
    assert!(
        removed
            .iter()
            .any(|l| l.to_string() == format!("loop device {dev}")),
        "{removed:?}"
    );
    assert!(
        !suite_loops().iter().any(|(d, _)| *d == dev),
        "{dev} is still attached"
    );
    assert!(!dir.exists(), "the dead run's scratch directory stayed");
}
