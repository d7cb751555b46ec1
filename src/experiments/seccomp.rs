//! Catalogue section 6: seccomp.
//!
//! Three layers: the seed's own C program (`fixtures/seccomp/seccomp.c`,
//! built with gcc against libseccomp), the same filter through the
//! libseccomp crate in the project's helper, and a Docker-format profile
//! (`fixtures/seccomp/docker-default-like.json`, see `crate::seccomp`)
//! applied by the helper. No filter is ever loaded in the test process: every
//! process that may die of SIGSYS is a child built for it, and each runs with
//! RLIMIT_CORE 0 in a scratch directory so a `core` pattern leaves no file.

use crate::experiment::{Ctx, Experiment, Outcome, Variant};
use crate::helper::seccomp::{status_field, Probe, ThreadReport};
use crate::needs::{cmd, Need, ROOT, USERNS};
use crate::process::{run, Ran};
use crate::{broken, check, check_eq, needs};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod stacking;
use stacking::{filter_precedence, install_rules, user_notif};

/// The rows that build the seed's C program.
const GCC_NEEDS: &[Need] = needs![cmd::GCC, &[Need::LibseccompDev]];
const UNSHARE_NEEDS: &[Need] = needs![ROOT, USERNS, cmd::UNSHARE];
const SIGSYS: i32 = libc::SIGSYS;
const SHELL_PROMPT: &str = "i will give you a shell\n";
/// What the shell prints if it ever runs: `$((6*7))` proves a shell evaluated it.
const SHELL_INPUT: &str = "echo shell-ran-$((6*7))\n";
const SHELL_RAN: &str = "shell-ran-42";
const EXECVE_RULE: &str = "\tseccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(execve), 0);\n";
const WRITE_RULE: &str = "\t//seccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(write), 0);\n";

/// Section 6's rows (seccomp), in run order.
pub static EXPERIMENTS: &[Experiment] = &[
    Experiment::new("sc.seed-program", seed_program)
        .asserts("the seed's seccomp.c prints exactly `i will give you a shell\\n`, then dies by SIGSYS (31, shell status 159); no shell runs")
        .needs(needs![GCC_NEEDS, crate::needs::kc::SECCOMP_FILTER])
        .control("built without the execve rule: the shell runs"),
    Experiment::new("sc.kill-write-variant", kill_write_variant)
        .asserts("with the commented `write` rule enabled nothing is printed and the program dies by SIGSYS")
        .needs(needs![GCC_NEEDS, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("sc.execve-killed", execve_killed)
        .asserts("libseccomp crate, KillProcess on execve: SIGSYS on exec; `Seccomp: 2`, `Seccomp_filters: 1` in /proc/<pid>/status before it")
        .needs(needs![ROOT, crate::needs::kc::SECCOMP_FILTER])
        .control("no filter: exec succeeds"),
    Experiment::new("sc.actions", actions)
        .asserts("execve from a second thread: KillProcess kills the process, KillThread only the thread, Trap gives SIGSYS with si_code SYS_SECCOMP and si_syscall execve, Errno(EPERM) returns -1/EPERM, Log lets it through")
        .anchor("kselftest seccomp_bpf actions")
        .needs(needs![ROOT, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("sc.inherited", inherited)
        .asserts("a filter survives fork and execve: a grandchild shows `Seccomp: 2`, `Seccomp_filters: 1` and its uname(2) is blocked")
        .needs(needs![ROOT, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("sc.default-profile-blocks-unshare", default_profile_blocks_unshare)
        .asserts("under the Docker-default-like profile (no CAP_SYS_ADMIN) `unshare -U true` fails with EPERM; unshare(2), clone(CLONE_NEWUSER), setns(2) get EPERM")
        .anchor("kselftest seccomp_bpf argument filters")
        .needs(needs![UNSHARE_NEEDS, crate::needs::kc::SECCOMP_FILTER])
        .control("unconfined: no profile applied"),
    Experiment::new("sc.unconfined-allows-unshare", unconfined_allows_unshare)
        .asserts("without a filter `unshare -U true` succeeds and the status shows `Seccomp: 0`")
        .needs(needs![UNSHARE_NEEDS, crate::needs::kc::SECCOMP_FILTER]),
    Experiment::new("sc.filter-precedence", filter_precedence)
        .asserts("two filters on getppid in either install order: the stronger action wins, KILL over TRAP over ERRNO over TRACE (no tracer: -1/ENOSYS) over LOG over ALLOW; of two ERRNO filters the one installed last gives its errno")
        .anchor("kselftest seccomp_bpf precedence").anchor("kselftest seccomp_bpf ERRNO_order")
        .needs(needs![ROOT, crate::needs::kc::SECCOMP_FILTER])
        .control("only the second filter of each pair: its own action"),
    Experiment::new("sc.user-notif-pid-translation", user_notif)
        .asserts("a SECCOMP_RET_USER_NOTIF listener is told req.pid 0 for a task in a sibling pid ns and the task's pid when both share one; a second listener on the chain fails with EBUSY; answering after the task died fails with ENOENT")
        .anchor("kselftest seccomp_bpf user_notification").anchor("youki seccomp_notify")
        .needs(needs![ROOT, &[Need::Kernel(5, 0)], crate::needs::kc::SECCOMP_FILTER, crate::needs::kc::PID_NS])
        .control("listener and task in one pid ns: req.pid is the task's pid"),
    Experiment::new("sc.install-rules", install_rules)
        .asserts("as uid 65534 (no CAP_SYS_ADMIN) without no_new_privs seccomp(2) fails with EACCES, with it the filter loads; with TSYNC all 3 threads show Seccomp: 2, without it only the installing one")
        .anchor("kselftest seccomp_bpf mode_filter_without_nnp").anchor("kselftest seccomp_bpf TSYNC")
        .needs(needs![ROOT, crate::needs::kc::SECCOMP_FILTER])
        .control("a process with CAP_SYS_ADMIN: installs without no_new_privs"),
];

/// The profiles and C source the seccomp rows and tests read, under the source tree.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/seccomp")
}

/// The seed's program, compiled into the binary from the fixture, so the
/// suite needs no source tree at run time.
const SEED_C: &str = include_str!("../../fixtures/seccomp/seccomp.c");

/// A child that must not leave a core file when SIGSYS kills it.
fn no_core(c: &mut Command) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Runs with `input` on stdin (then EOF).
fn run_with_input(cmd: &mut Command, input: &str) -> anyhow::Result<Ran> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        // A child killed before it reads closes the pipe: EPIPE is expected.
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output()?;
    Ok(Ran {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn replace_once(src: &str, from: &str, to: &str) -> anyhow::Result<String> {
    let n = src.matches(from).count();
    if n != 1 {
        anyhow::bail!("the fixture seccomp.c holds {from:?} {n} times, expected once");
    }
    Ok(src.replacen(from, to, 1))
}

/// Builds the seed's program, changed by `edit`, in the scratch dir; runs it
/// once directly (for the signal) and once through a shell (for `$?`).
fn build_and_run(ctx: &mut Ctx, edit: impl Fn(&str) -> anyhow::Result<String>) -> Outcome {
    let src = edit(SEED_C)?;
    let dir = ctx.scratch()?;
    std::fs::write(dir.join("seccomp.c"), &src)?;
    // The cached build runs where the cache keeps it: copying an executable
    // from this multithreaded process could make its exec fail with
    // ETXTBSY (another thread's fork would hold the written file open).
    let (bin, built) = match seed_cache::fetch(&src) {
        Some(bin) => (bin, "cached"),
        None => {
            gcc_seed(ctx, &dir)?;
            seed_cache::store(&src, &dir);
            (dir.join("seccomp"), "gcc")
        }
    };
    ctx.measure("build", built);
    let direct = run_with_input(no_core(&mut ctx.cmd(&bin)).current_dir(&dir), SHELL_INPUT)?;
    let via_sh = run(no_core(&mut ctx.cmd("/bin/sh"))
        .current_dir(&dir)
        .arg("-c")
        .arg(format!(
            "printf '%s' '{SHELL_INPUT}' | '{}'; echo \"status=$?\"",
            bin.display()
        )))?;
    let (printed, status) = via_sh
        .stdout
        .rsplit_once("status=")
        .map(|(p, s)| (p.to_string(), s.trim().parse::<i32>().ok()))
        .unwrap_or((via_sh.stdout.clone(), None));
    ctx.observe("stdout", &direct.stdout);
    ctx.observe("signal", direct.signal);
    ctx.observe("exit_code", direct.code);
    ctx.observe("shell_stdout", &printed);
    ctx.observe("shell_status", status);
    ctx.observe("shell_ran", direct.stdout.contains(SHELL_RAN));
    Ok(())
}

/// The seed's own command line, run where the source is.
fn gcc_seed(ctx: &Ctx, dir: &Path) -> Outcome {
    let gcc =
        run(ctx
            .cmd("gcc")
            .current_dir(dir)
            .args(["-o", "seccomp", "seccomp.c", "-lseccomp"]))?;
    if !gcc.success() {
        let e = gcc.stderr.trim();
        if e.contains("seccomp.h") || e.contains("-lseccomp") {
            return Err(crate::experiment::Problem::Unmet(format!(
                "gcc cannot build against libseccomp: install libseccomp-dev ({e})"
            )));
        }
        broken!("gcc -o seccomp seccomp.c -lseccomp failed: {e}");
    }
    Ok(())
}

/// The seed's program as gcc built it from a given source, kept between
/// runs: gcc was this section's largest cost (three builds of ~0.1 s of CPU
/// per run) and its output depends only on the source, gcc and libseccomp's
/// header, which make the key. Each entry keeps its source, compared in full
/// before use. The directory is the running user's, writable by no one else
/// (root's under sudo: root execs what it holds), or the cache is not used.
mod seed_cache {
    use std::path::{Path, PathBuf};

    /// The entry for `src`, keyed also by the files that shape the binary.
    fn entry(src: &str) -> Option<PathBuf> {
        let gcc = crate::host::which("gcc")?.canonicalize().ok()?;
        let header = Path::new("/usr/include/seccomp.h");
        crate::owner::cache_entry("seccomp", src, &[&gcc, header])
    }

    /// The cached build of `src`, if there is one.
    pub(super) fn fetch(src: &str) -> Option<PathBuf> {
        let e = entry(src)?;
        let bin = e.join("seccomp");
        (std::fs::read_to_string(e.join("seccomp.c")).ok()? == src && bin.is_file()).then_some(bin)
    }

    /// Keeps `dir`'s fresh build of `src` (best effort: a failure only means
    /// gcc runs again next time).
    pub(super) fn store(src: &str, dir: &Path) {
        let Some(e) = entry(src) else { return };
        crate::owner::cache_fill(&e, |tmp| {
            std::fs::create_dir(tmp).is_ok()
                && std::fs::write(tmp.join("seccomp.c"), src).is_ok()
                && std::fs::copy(dir.join("seccomp"), tmp.join("seccomp")).is_ok()
        });
    }
}

fn seed_program(ctx: &mut Ctx, v: Variant) -> Outcome {
    build_and_run(ctx, |s| {
        if v.isolated() {
            Ok(s.to_string())
        } else {
            replace_once(s, EXECVE_RULE, &format!("//{}", EXECVE_RULE.trim_start()))
        }
    })?;
    let o = ctx.observations().clone();
    check!(
        o["shell_ran"] == json!(false),
        "a shell ran: the program printed {}",
        o["stdout"]
    );
    check_eq!(o["stdout"], json!(SHELL_PROMPT), "what the program printed");
    check_eq!(o["signal"], json!(SIGSYS), "the signal that ended it");
    check_eq!(o["shell_stdout"], json!(SHELL_PROMPT), "printed, run by sh");
    check_eq!(o["shell_status"], json!(128 + SIGSYS), "`$?` in sh");
    Ok(())
}

fn kill_write_variant(ctx: &mut Ctx, _v: Variant) -> Outcome {
    build_and_run(ctx, |s| {
        replace_once(s, WRITE_RULE, &WRITE_RULE.replacen("//", "", 1))
    })?;
    let o = ctx.observations().clone();
    check_eq!(o["stdout"], json!(""), "what the program printed");
    check_eq!(o["signal"], json!(SIGSYS), "the signal that ended it");
    check_eq!(o["shell_status"], json!(128 + SIGSYS), "`$?` in sh");
    Ok(())
}

/// `Seccomp:` and `Seccomp_filters:` of a process, through procfs (the
/// crate has no field for the filter count, so that one is read raw).
fn seccomp_status(pid: i32) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let mode = procfs::process::Process::new(pid)?.status()?.seccomp;
    let raw = crate::experiment::read(format!("/proc/{pid}/status"))?;
    let filters = status_field(&raw, "Seccomp_filters");
    Ok((mode, filters))
}

fn execve_killed(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut c = ctx.helper();
    c.arg("seccomp-exec");
    if v.isolated() {
        c.args(["--rule", "execve=kill-process"]);
    }
    c.args(["--wait", "--", "/bin/sh", "-c", "echo shell-ran"]);
    let mut child = no_core(&mut c)
        .current_dir(ctx.scratch()?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take();
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    out.read_line(&mut ready)?;
    if ready.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        broken!("helper did not get ready: {ready:?}");
    }
    // The filter is loaded and the exec has not happened yet.
    let (mode, filters) = seccomp_status(child.id() as i32)?;
    if let Some(i) = stdin.as_mut() {
        i.write_all(b"go\n")?;
    }
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest)?;
    let status = child.wait()?;
    ctx.observe("seccomp_mode", mode);
    ctx.observe("seccomp_filters", filters);
    ctx.observe("signal", status.signal());
    ctx.observe("exit_code", status.code());
    ctx.observe("stdout_after_exec", &rest);
    check_eq!(mode, Some(2), "`Seccomp:` of the child before the exec");
    check_eq!(filters, Some(1), "`Seccomp_filters:` of the child");
    check!(!rest.contains("shell-ran"), "the exec succeeded: {rest:?}");
    check_eq!(
        status.signal(),
        Some(SIGSYS),
        "the signal that ended the child"
    );
    Ok(())
}

/// The helper's reply: the last stdout line that parses as one.
fn helper_json<T: serde::de::DeserializeOwned>(r: &Ran) -> Option<T> {
    r.stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<T>(l).ok())
}

fn actions(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let mut seen = serde_json::Map::new();
    let mut results = Vec::new();
    for a in ["kill-process", "kill-thread", "trap", "errno", "log"] {
        let r = run(no_core(&mut ctx.helper())
            .current_dir(ctx.scratch()?)
            .args(["seccomp-thread", a]))?;
        let j: Option<ThreadReport> = helper_json(&r);
        seen.insert(
            a.into(),
            json!({"signal": r.signal, "code": r.code, "report": j,
                   "exec_ran": r.stdout.contains("exec-ran"),
                   "seccomp_after_exec": seccomp_after_exec(&r.stdout),
                   "stderr": r.stderr.trim()}),
        );
        results.push((a, r, j));
    }
    ctx.observe("actions", &seen);
    for (a, r, j) in &results {
        let ran = r.stdout.contains("exec-ran");
        let j = j.as_ref();
        match *a {
            "kill-process" => check_kill_process(r, j, ran)?,
            "kill-thread" => check_kill_thread(r, j, ran)?,
            "trap" => check_trap(j, ran)?,
            "errno" => check_errno(j, ran)?,
            _ => check_log(r, ran)?,
        }
    }
    Ok(())
}

/// KillProcess: the whole process dies of SIGSYS before it goes on.
fn check_kill_process(r: &Ran, j: Option<&ThreadReport>, ran: bool) -> Outcome {
    check_eq!(r.signal, Some(SIGSYS), "KillProcess: signal of the process");
    check!(
        !ran && j.is_none(),
        "KillProcess: the process went on: {r:?}"
    );
    Ok(())
}

/// KillThread: only the calling thread dies; the main thread reports it.
fn check_kill_thread(r: &Ran, j: Option<&ThreadReport>, ran: bool) -> Outcome {
    check_eq!(r.code, Some(0), "KillThread: the process exits normally");
    check!(!ran, "KillThread: the exec went through");
    check_eq!(
        j.map(|j| j.thread_gone),
        Some(true),
        "KillThread: the thread is gone"
    );
    check_eq!(
        j.map(|j| j.returned),
        Some(false),
        "KillThread: execve never returned"
    );
    check_eq!(
        j.map(|j| j.main_alive),
        Some(true),
        "KillThread: main thread reports"
    );
    Ok(())
}

/// Trap: a SIGSYS handler sees SYS_SECCOMP for execve, and the thread goes on.
fn check_trap(j: Option<&ThreadReport>, ran: bool) -> Outcome {
    check!(!ran, "Trap: the exec went through");
    check_eq!(j.map(|j| j.trapped), Some(true), "Trap: SIGSYS handler ran");
    check_eq!(j.map(|j| j.si_code), Some(1), "Trap: si_code (SYS_SECCOMP)");
    check_eq!(
        j.map(|j| j.si_syscall as libc::c_long),
        Some(libc::SYS_execve),
        "Trap: si_syscall"
    );
    check_eq!(
        j.map(|j| j.returned),
        Some(true),
        "Trap: the thread went on"
    );
    Ok(())
}

/// Errno: execve returns -1 with EPERM, no signal.
fn check_errno(j: Option<&ThreadReport>, ran: bool) -> Outcome {
    check!(!ran, "Errno: the exec went through");
    check_eq!(j.map(|j| j.trapped), Some(false), "Errno: no signal");
    check_eq!(j.map(|j| j.ret), Some(-1), "Errno: execve's return");
    check_eq!(j.map(|j| j.errno), Some(libc::EPERM), "Errno: errno");
    Ok(())
}

/// Log: the exec goes through. Without the filter it would too, so the
/// exec'd shell must show the filter still installed.
fn check_log(r: &Ran, ran: bool) -> Outcome {
    check_eq!(
        seccomp_after_exec(&r.stdout),
        Some(2),
        "Log: `Seccomp:` of the exec'd shell"
    );
    check!(ran, "Log: the exec did not go through: {r:?}");
    check_eq!(r.code, Some(0), "Log: the shell's exit code");
    Ok(())
}

/// The `seccomp=N` line the exec'd shell of `seccomp-thread` prints.
pub fn seccomp_after_exec(stdout: &str) -> Option<i64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("seccomp="))
        .and_then(|v| v.trim().parse().ok())
}

fn inherited(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let exe = crate::helper::helper_path();
    let script = format!(
        "grep -E '^Seccomp(_filters)?:' /proc/self/status; uname -s; echo \"uname_status=$?\"; '{}' helper seccomp-probe",
        exe.display()
    );
    let r = run(ctx
        .helper()
        .args(["seccomp-exec", "--rule", "uname=errno", "--fork", "--"])
        .args(["/bin/sh", "-c", &script]))?;
    let probe: Option<Probe> = helper_json(&r);
    let cli_mode = status_field(&r.stdout, "Seccomp");
    let cli_filters = status_field(&r.stdout, "Seccomp_filters");
    let uname_status = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("uname_status="))
        .and_then(|s| s.trim().parse::<i32>().ok());
    ctx.observe("grandchild_seccomp", cli_mode);
    ctx.observe("grandchild_seccomp_filters", cli_filters);
    ctx.observe("uname_status", uname_status);
    ctx.observe("uname_stderr", r.stderr.trim());
    ctx.observe("probe", &probe);
    ctx.observe("exit_code", r.code);
    check_eq!(
        cli_mode,
        Some(2),
        "`Seccomp:` of grep, a grandchild after execve"
    );
    check_eq!(cli_filters, Some(1), "`Seccomp_filters:` of grep");
    check!(
        uname_status.is_some_and(|s| s != 0) && r.stderr.contains("Operation not permitted"),
        "uname(1) in a grandchild was not blocked: status {uname_status:?}, stderr {:?}",
        r.stderr.trim()
    );
    let probe = probe.as_ref();
    check_eq!(
        probe.and_then(|p| p.seccomp),
        Some(2),
        "procfs `Seccomp` of the probe grandchild"
    );
    check_eq!(
        probe.and_then(|p| p.seccomp_filters),
        Some(1),
        "`Seccomp_filters` of the probe"
    );
    check_eq!(
        probe.map(|p| p.uname_errno),
        Some(libc::EPERM),
        "uname(2) errno in the probe"
    );
    Ok(())
}

/// Runs `cmd` under the profile (isolated) or unconfined (control).
fn under_profile(ctx: &mut Ctx, confined: bool, cmd: &[&str]) -> anyhow::Result<Ran> {
    let profile = ctx.scratch()?.join("docker-default-like.json");
    std::fs::write(&profile, crate::seccomp::PROFILE_JSON)?;
    let mut c = ctx.helper();
    c.arg("seccomp-profile");
    if confined {
        c.arg("--profile")
            .arg(&profile)
            .args(["--caps", "docker-default"]);
    } else {
        c.arg("--unconfined");
    }
    c.arg("--").args(cmd);
    run(&mut c)
}

fn probe_under(ctx: &mut Ctx, confined: bool) -> anyhow::Result<Probe> {
    let exe = crate::helper::helper_path();
    let exe = exe.to_string_lossy();
    let r = under_profile(ctx, confined, &[&exe, "helper", "seccomp-probe"])?;
    helper_json(&r).ok_or_else(|| anyhow::anyhow!("probe printed no report: {r:?}"))
}

/// The seed's check, with or without the profile: `unshare -U true`, the
/// `Seccomp:` line a confined process sees, and the kernel-layer probe, all
/// recorded as observations.
fn unshare_under(ctx: &mut Ctx, confined: bool) -> anyhow::Result<(Ran, Option<u32>, Probe)> {
    let cli = under_profile(ctx, confined, &["unshare", "-U", "true"])?;
    let grep = under_profile(ctx, confined, &["grep", "^Seccomp:", "/proc/self/status"])?;
    let mode = status_field(&grep.stdout, "Seccomp");
    let probe = probe_under(ctx, confined)?;
    ctx.observe("unshare_exit", cli.shell_status());
    ctx.observe("unshare_stderr", cli.stderr.trim());
    ctx.observe("grep_seccomp", mode);
    ctx.observe("probe", &probe);
    Ok((cli, mode, probe))
}

fn default_profile_blocks_unshare(ctx: &mut Ctx, v: Variant) -> Outcome {
    let confined = v.isolated();
    let (cli, mode, probe) = unshare_under(ctx, confined)?;
    check!(
        !cli.success()
            && cli
                .stderr
                .contains("unshare failed: Operation not permitted"),
        "`unshare -U true` was not refused with EPERM: exit {}, stderr {:?}",
        cli.shell_status(),
        cli.stderr.trim()
    );
    check_eq!(mode, Some(2), "`Seccomp:` under the profile");
    for (k, errno) in [
        ("unshare_errno", probe.unshare_errno),
        ("clone_newuser_errno", probe.clone_newuser_errno),
        ("setns_errno", probe.setns_errno),
    ] {
        check_eq!(errno, libc::EPERM, "{k} under the profile");
    }
    // The profile is an allow-list, not a blanket ban: clone without
    // namespace flags still works.
    check_eq!(probe.clone_plain_errno, 0, "plain clone under the profile");
    Ok(())
}

fn unconfined_allows_unshare(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let (cli, mode, probe) = unshare_under(ctx, false)?;
    check_eq!(
        cli.shell_status(),
        0,
        "`unshare -U true` exit status ({})",
        cli.stderr.trim()
    );
    check_eq!(mode, Some(0), "`Seccomp:` unconfined");
    check_eq!(probe.seccomp, Some(0), "procfs `Seccomp` unconfined");
    check_eq!(probe.unshare_errno, 0, "unshare(CLONE_NEWUSER) unconfined");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// sc.actions' Log case: the exec going through is not enough, since it
    /// would without any filter; the exec'd shell's `Seccomp:` decides.
    #[rstest]
    #[case("seccomp=2\nexec-ran\n", Some(2))]
    #[case("seccomp=0\nexec-ran\n", Some(0))]
    #[case("exec-ran\n", None)]
    fn log_reads_the_filter_after_the_exec(#[case] out: &str, #[case] want: Option<i64>) {
        assert_eq!(seccomp_after_exec(out), want);
    }

    #[test]
    fn the_fixture_is_the_seeds_program() {
        let seed = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/docker-deep-dive.md"),
        );
        let fixture = std::fs::read_to_string(fixtures_dir().join("seccomp.c")).unwrap();
        // The rules the variants edit are each there exactly once.
        assert_eq!(fixture.matches(EXECVE_RULE).count(), 1);
        assert_eq!(fixture.matches(WRITE_RULE).count(), 1);
        if let Ok(seed) = seed {
            assert!(
                seed.contains(&fixture),
                "fixtures/seccomp/seccomp.c is not verbatim the seed's"
            );
        }
    }

    #[rstest]
    #[case("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n", "Seccomp", Some(2))]
    #[case("Seccomp:\t2\nSeccomp_filters:\t1\n", "Seccomp_filters", Some(1))]
    #[case("Seccomp:\t0\n", "Seccomp_filters", None)]
    fn status_fields(#[case] s: &str, #[case] k: &str, #[case] want: Option<u32>) {
        assert_eq!(status_field(s, k), want);
    }
}
