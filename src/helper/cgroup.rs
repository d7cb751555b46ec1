//! Cgroup ops: join groups by their procs files (the filesystem twin of
//! cgexec), then exec, park, allocate, fork or burn CPU.

use super::{die, exec, reply};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Reply of `cg-fork`: how many children were forked before a fork failed
/// (or the maximum was reached), and the errno name of the failure.
#[derive(Debug, Serialize, Deserialize)]
pub struct CgFork {
    /// Children forked before the first failure (or the cap).
    pub forked: usize,
    /// The errno name of the failed fork (EAGAIN at `pids.max`); None when none failed.
    pub errno: Option<String>,
}

/// Reply of `cg-burn`: CPU time this process got during its wall time, in
/// microseconds (`spin` keeps the loop from being optimised away).
#[derive(Debug, Serialize, Deserialize)]
pub struct CgBurn {
    /// CPU time (user + system) the process got, in microseconds.
    pub cpu_us: f64,
    /// Wall time of the burn, in microseconds; `cpu_us / wall_us` is the share.
    pub wall_us: f64,
    /// Loop iterations, kept only so the loop is not optimised away.
    pub spin: u64,
}

/// `--procs FILE` (repeatable) and `--NAME VALUE` options, then `-- CMD`.
struct Opts {
    procs: Vec<String>,
    vals: Vec<(String, String)>,
    cmd: Vec<String>,
}

fn opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        procs: vec![],
        vals: vec![],
        cmd: vec![],
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            o.cmd = args[i + 1..].to_vec();
            break;
        }
        let k = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let val = args
            .get(i + 1)
            .cloned()
            .ok_or_else(|| format!("--{k} needs a value"))?;
        if k == "procs" {
            o.procs.push(val);
        } else {
            o.vals.push((k.to_string(), val));
        }
        i += 2;
    }
    Ok(o)
}

impl Opts {
    fn num(&self, k: &str) -> Result<u64, String> {
        self.vals
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("missing or bad --{k}"))
    }

    /// Moves this process into every group given, as cgexec does.
    fn join(&self) -> Result<(), String> {
        let me = std::process::id().to_string();
        for p in &self.procs {
            std::fs::write(p, &me).map_err(|e| format!("writing pid {me} to {p}: {e}"))?;
        }
        Ok(())
    }
}

/// `cg-enter --procs FILE… -- CMD…`: join the groups, then exec CMD (the
/// filesystem twin of cgexec).
pub(super) fn op_enter(args: &[String]) -> i32 {
    match opts(args).and_then(|o| o.join().map(|_| o)) {
        Ok(o) => exec(&o.cmd),
        Err(e) => die(e),
    }
}

/// `cg-park [--procs FILE…]`: join, print `ready PID`, wait to be killed.
pub(super) fn op_park(args: &[String]) -> i32 {
    if let Err(e) = opts(args).and_then(|o| o.join()) {
        return die(e);
    }
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    loop {
        nix::unistd::pause();
    }
}

/// `cg-alloc --procs FILE --bytes N`: join, then map and touch N bytes of
/// anonymous memory, page by page; prints `allocated N` if it lives.
pub(super) fn op_alloc(args: &[String]) -> i32 {
    let o = match opts(args) {
        Ok(o) => o,
        Err(e) => return die(e),
    };
    let n = match o.num("bytes") {
        Ok(n) => n as usize,
        Err(e) => return die(e),
    };
    if let Err(e) = o.join() {
        return die(e);
    }
    // SAFETY: a fresh private anonymous mapping, touched only within its length.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            n,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return die(format!("mmap {n}: {}", std::io::Error::last_os_error()));
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let base = p as *mut u8;
        let mut off = 0;
        while off < n {
            std::ptr::write_volatile(base.add(off), 1);
            off += page;
        }
    }
    println!("allocated {n}");
    0
}

/// `cg-fork --procs FILE --max M`: join, then fork children that wait on a
/// pipe until a fork fails or M succeeded; prints
/// `{"forked": K, "errno": "EAGAIN"}`, releases and reaps the children.
pub(super) fn op_fork(args: &[String]) -> i32 {
    use nix::unistd::{fork, ForkResult};
    let o = match opts(args) {
        Ok(o) => o,
        Err(e) => return die(e),
    };
    let max = match o.num("max") {
        Ok(n) => n,
        Err(e) => return die(e),
    };
    if let Err(e) = o.join() {
        return die(e);
    }
    let (r, w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return die(format!("pipe: {e}")),
    };
    let mut children = Vec::new();
    let mut errno: Option<nix::errno::Errno> = None;
    for _ in 0..max {
        // SAFETY: single-threaded; the child only calls read and _exit.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => unsafe {
                drop(w);
                let mut b = [0u8; 1];
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&r),
                    b.as_mut_ptr().cast(),
                    1,
                );
                libc::_exit(0);
            },
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(e) => {
                errno = Some(e);
                break;
            }
        }
    }
    drop(w);
    for c in &children {
        let _ = nix::sys::wait::waitpid(*c, None);
    }
    reply(&CgFork {
        forked: children.len(),
        errno: errno.map(|e| format!("{e:?}")),
    })
}

fn clock_us(id: nix::time::ClockId) -> f64 {
    nix::time::clock_gettime(id)
        .map(|t| t.tv_sec() as f64 * 1e6 + t.tv_nsec() as f64 / 1e3)
        .unwrap_or(0.0)
}

/// `cg-burn --procs FILE --ms T`: join, spin for T ms of wall time, print
/// the CPU time this process got meanwhile (`{"cpu_us", "wall_us"}`).
/// Counting starts after joining, so exec and startup are not billed.
pub(super) fn op_burn(args: &[String]) -> i32 {
    use nix::time::ClockId;
    let o = match opts(args) {
        Ok(o) => o,
        Err(e) => return die(e),
    };
    let ms = match o.num("ms") {
        Ok(n) => n as f64,
        Err(e) => return die(e),
    };
    if let Err(e) = o.join() {
        return die(e);
    }
    let (w0, c0) = (
        clock_us(ClockId::CLOCK_MONOTONIC),
        clock_us(ClockId::CLOCK_PROCESS_CPUTIME_ID),
    );
    let mut x: u64 = 0;
    let mut w = w0;
    while w - w0 < ms * 1000.0 {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        w = clock_us(ClockId::CLOCK_MONOTONIC);
    }
    let c = clock_us(ClockId::CLOCK_PROCESS_CPUTIME_ID);
    reply(&CgBurn {
        cpu_us: (c - c0).round(),
        wall_us: (w - w0).round(),
        spin: x & 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[rstest]
    #[case(&["--procs", "/a", "--procs", "/b", "--", "sh", "-c", "x"], 2, 3)]
    #[case(&["--bytes", "5"], 0, 0)]
    fn helper_options(#[case] a: &[&str], #[case] procs: usize, #[case] cmd: usize) {
        let o = opts(&s(a)).unwrap();
        assert_eq!((o.procs.len(), o.cmd.len()), (procs, cmd));
    }

    #[rstest]
    #[case(&["--bytes"])]
    #[case(&["bytes", "5"])]
    fn helper_options_reject(#[case] a: &[&str]) {
        assert!(opts(&s(a)).is_err());
    }

    #[test]
    fn helper_numbers() {
        let o = opts(&s(&["--bytes", "67108864", "--max", "x"])).unwrap();
        assert_eq!(o.num("bytes"), Ok(67108864));
        assert!(o.num("max").is_err());
        assert!(o.num("ms").is_err());
    }
}
