//! The rows about resource limits: the memory limit in the container's
//! cgroup, the seed's request below the engine's minimum, and the OOM kill.

use super::{both, observe_versions, LIMIT, SEED_LIMIT};
use crate::docker::{self as dk, Container, Launch};
use crate::experiment::{read, Ctx, Outcome, Problem, Variant};
use crate::host::HostFacts;
use crate::process::wait_until;
use crate::{broken, check, check_eq};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cgroup path of `controller` in a `/proc/<pid>/cgroup` text; `None`
/// as controller means the v2 line (`0::/path`).
pub fn cgroup_path(text: &str, controller: Option<&str>) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => id == "0" && ctrls.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// A `key value` line's value, as in memory.oom_control or memory.events.
pub fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The memory cgroup directory of a host process, and whether it is v1.
fn memory_cgroup(pid: i32) -> anyhow::Result<(PathBuf, bool)> {
    let host = HostFacts::get();
    let text = read(format!("/proc/{pid}/cgroup"))?;
    if let (Some(mnt), Some(p)) = (
        host.cgroup.v1_mounts.get("memory"),
        cgroup_path(&text, Some("memory")),
    ) {
        return Ok((mnt.join(p.trim_start_matches('/')), true));
    }
    if let (Some(mnt), Some(p)) = (&host.cgroup.v2_mount, cgroup_path(&text, None)) {
        return Ok((mnt.join(p.trim_start_matches('/')), false));
    }
    anyhow::bail!("no memory cgroup of pid {pid} in: {}", text.trim())
}

/// The memory limit file of a host process's cgroup (v1
/// memory.limit_in_bytes, v2 memory.max).
fn limit_file(pid: i32) -> anyhow::Result<PathBuf> {
    let (dir, v1) = memory_cgroup(pid)?;
    Ok(dir.join(if v1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    }))
}

/// The oom_kill counter of a memory cgroup (v1 memory.oom_control, v2
/// memory.events).
fn oom_kills(dir: &Path, v1: bool) -> anyhow::Result<u64> {
    let f = dir.join(if v1 {
        "memory.oom_control"
    } else {
        "memory.events"
    });
    let t = read(&f)?;
    kv(&t, "oom_kill").ok_or_else(|| anyhow::anyhow!("no oom_kill in {}", f.display()))
}

/// "Minimum memory limit allowed is 6MB" -> 6 MiB in bytes.
pub fn parse_minimum(msg: &str) -> Option<u64> {
    let rest = &msg[msg.find("Minimum memory limit allowed is ")? + 32..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].chars().next()?;
    Some(
        n * match unit {
            'k' | 'K' => 1 << 10,
            'M' | 'm' => 1 << 20,
            'G' | 'g' => 1 << 30,
            _ => 1,
        },
    )
}

pub(super) fn memory_limit_matches(ctx: &mut Ctx, _v: Variant) -> Outcome {
    observe_versions(ctx)?;
    let lim = LIMIT.to_string();
    let seed = SEED_LIMIT.to_string();
    let mut ctx2 = ctx.fork();
    let (limited, refused) = both(
        || -> anyhow::Result<_> {
            let c = dk::run_shell(ctx, &["--network", "none", "--memory", &lim])?;
            let pid = dk::init_pid(ctx, &c)?;
            let file = limit_file(pid)?;
            Ok((c, file.clone(), read(&file)?))
        },
        || {
            dk::run_fg_outcome(
                &mut ctx2,
                "par",
                &["--network", "none", "--memory", &seed],
                &["true"],
            )
        },
    );
    let (c, file, value) = limited?;
    let (status, refusal) = match refused? {
        Launch::Started(_, r) => (r.shell_status(), r.stderr.trim().to_string()),
        Launch::NotCreated { status, message } => (status, message),
        // A container that was made but could not start says nothing about
        // the engine's minimum.
        Launch::NotStarted(why) => broken!("the seed's --memory {seed} container: {why}"),
    };
    drop(ctx2);
    let minimum = parse_minimum(&refusal);
    ctx.measure("cgroup_file", file.display().to_string());
    ctx.observe("cgroup_value", value.trim());
    ctx.observe(
        "container_id_in_path",
        file.to_string_lossy().contains(&c.id),
    );
    ctx.observe("seed_request_status", status);
    ctx.observe("seed_request_answer", &refusal);
    ctx.observe("engine_minimum_bytes", minimum);
    check_eq!(value.trim(), lim.as_str(), "{}", file.display());
    check!(
        file.to_string_lossy().contains(&c.id),
        "{} is not the container's cgroup",
        file.display()
    );
    ctx.observe("seed_request_refused", status != 0);
    // An engine without the 6 MB minimum must then honour 4 MiB: read the
    // limit of a live container made with the seed's request.
    let seed_readback = if status == 0 {
        let c = dk::run_shell(ctx, &["--network", "none", "--memory", &seed])?;
        let f = limit_file(dk::init_pid(ctx, &c)?)?;
        Some(read(&f)?.trim().to_string())
    } else {
        None
    };
    ctx.observe("seed_request_cgroup_value", &seed_readback);
    judge_seed_request(status, &refusal, seed_readback.as_deref())
}

/// The seed's `--memory 4194304`: refused with status 125 and a stated
/// minimum above it, or accepted and read back exactly from the cgroup.
pub fn judge_seed_request(status: i32, answer: &str, readback: Option<&str>) -> Outcome {
    if status == 0 {
        let want = SEED_LIMIT.to_string();
        check_eq!(
            readback,
            Some(want.as_str()),
            "the cgroup limit of a container run with the seed's --memory {SEED_LIMIT}"
        );
        return Ok(());
    }
    check_eq!(status, 125, "docker run status for a refused request");
    let Some(min) = parse_minimum(answer) else {
        return Err(Problem::Fail(format!(
            "refusal without the engine's minimum: {answer:?}"
        )));
    };
    check!(
        SEED_LIMIT < min,
        "refused {SEED_LIMIT} though the stated minimum is {min}"
    );
    Ok(())
}

pub(super) fn oom_killed(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let lim = LIMIT.to_string();
    // The init waits on a fifo, so the counter can be read while the
    // container (and its cgroup) still exists; then it allocates over the
    // limit itself, which ends the container.
    let c = dk::run_detached(
        ctx,
        &["--network", "none", "--memory", &lim],
        &["sh", "-c", "mkfifo /tmp/go && read x < /tmp/go && exec dd if=/dev/zero of=/dev/null bs=128M count=1"],
    )?;
    let pid = dk::init_pid(ctx, &c)?;
    let (dir, v1) = memory_cgroup(pid)?;
    let before = oom_kills(&dir, v1)?;
    // State.OOMKilled is also set by an exec's OOM kill (moby#18433): the
    // kernel log names the process each kill hit, so the init's own kill
    // shows by its host pid.
    let mut kmsg = Kmsg::from_now().map_err(|e| {
        Problem::Unmet(format!(
            "reading /dev/kmsg (to tell the init's OOM kill from an exec's): {e}"
        ))
    })?;
    let ex = dk::exec(ctx, &c, &DD_OVER_LIMIT)?;
    let after = oom_kills(&dir, v1)?;
    ctx.measure("cgroup", dir.display().to_string());
    ctx.observe("oom_kill_before", before);
    ctx.observe("oom_kill_after_exec", after);
    ctx.observe("exec_status", ex.shell_status());
    release_init(ctx, &c)?;
    let (w, st, killed) = await_end(ctx, &c, pid, &mut kmsg)?;
    check_eq!(
        ex.shell_status(),
        137,
        "status of the exec'd allocation over the limit"
    );
    check!(after > before, "oom_kill did not rise: {before} -> {after}");
    check_eq!(w.trim(), "137", "the container's exit status (docker wait)");
    check_eq!(
        st["State"]["ExitCode"].as_i64(),
        Some(137),
        "State.ExitCode"
    );
    check_eq!(
        st["State"]["OOMKilled"].as_bool(),
        Some(true),
        "State.OOMKilled"
    );
    check!(
        killed.contains(&pid),
        "the kernel log names no OOM kill of the init (host pid {pid}), only {killed:?}: OOMKilled may be the exec's"
    );
    Ok(())
}

/// Waits for the released container to end; its `docker wait` status, its
/// inspect document and the host pids the kernel log names as OOM-killed
/// (polled, as the log may trail the exit), all observed.
fn await_end(
    ctx: &mut Ctx,
    c: &Container,
    pid: i32,
    kmsg: &mut Kmsg,
) -> anyhow::Result<(String, serde_json::Value, Vec<i32>)> {
    let w = dk::docker_ok(ctx, &["wait", &c.id])?;
    let st = dk::inspect(ctx, c)?;
    let mut killed = Vec::new();
    wait_until(Duration::from_secs(5), || {
        killed.extend(oom_killed_pids(&kmsg.records()));
        killed.contains(&pid)
    });
    ctx.measure("init_host_pid", pid);
    ctx.measure("oom_killed_host_pids", &killed);
    ctx.observe("oom_killed_the_init", killed.contains(&pid));
    ctx.observe("wait_status", w.trim());
    ctx.observe("state_exit_code", &st["State"]["ExitCode"]);
    ctx.observe("state_oom_killed", &st["State"]["OOMKilled"]);
    Ok((w, st, killed))
}

/// One allocation of 128 MiB, over the container's limit, and over the
/// limit plus swap (Docker's default --memory-swap is twice --memory).
const DD_OVER_LIMIT: [&str; 5] = ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"];

/// Lets the oom_killed container's init go on past its fifo, to allocate.
fn release_init(ctx: &Ctx, c: &Container) -> Outcome {
    let go = dk::exec(
        ctx,
        c,
        &[
            "sh",
            "-c",
            "until [ -p /tmp/go ]; do usleep 1000; done; echo go > /tmp/go",
        ],
    )?;
    if !go.success() {
        broken!(
            "could not release the container's init: {}",
            go.stderr.trim()
        );
    }
    Ok(())
}

/// `/dev/kmsg` read from the moment it was opened, without blocking.
struct Kmsg(std::fs::File);

impl Kmsg {
    fn from_now() -> std::io::Result<Kmsg> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        f.seek(SeekFrom::End(0))?;
        Ok(Kmsg(f))
    }

    /// The records logged since the last call (one per read(2)).
    fn records(&mut self) -> Vec<String> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // EPIPE: records were overwritten; the next read goes on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// Host pids in the kernel's "Killed process PID (comm)" OOM lines.
pub fn oom_killed_pids(records: &[String]) -> Vec<i32> {
    records
        .iter()
        .filter_map(|r| {
            let rest = &r[r.find("Killed process ")? + 15..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}
