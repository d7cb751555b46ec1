//! Catalogue section 6: seccomp.
//!
//! Every filter here is loaded in a child built to die: the seed's program,
//! or `isocheck helper seccomp-*`. A SIGSYS never reaches a test process.

use crate::experiment::{Ctx, Experiment, Outcome, Section, Variant};
use crate::helper::{self, HelperOp};
use crate::needs::{Need, Tool};
use crate::process::{run, run_ok, wait_until, Spawned};
use crate::seccomp::{status_fields, translate, DOCKER_DEFAULT_CAPS};
use crate::{check, check_eq};
use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
use serde_json::{json, Value};
use std::ffi::CString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

const SEED_C: &str = include_str!("../../fixtures/seccomp/seccomp.c");
const PROFILE: &str = include_str!("../../fixtures/seccomp/docker-default-like.json");
const EXECVE_RULE: &str = "\tseccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(execve), 0);";
const WRITE_RULE: &str = "\t//seccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(write), 0);";
const SIGSYS: i32 = libc::SIGSYS;

const BUILD: &[Need] = &[Need::Tool(Tool::Gcc), Need::LibseccompDev];

pub static EXPERIMENTS: &[Experiment] = &[
    Experiment {
        id: "sc.seed-program",
        section: Section::Seccomp,
        asserts: "the seed's seccomp.c prints exactly `i will give you a shell\\n`, then dies by SIGSYS (shell status 159); no shell runs",
        needs: BUILD,
        control: Some("the same program built without the execve rule"),
        body: seed_program,
        exclusive: None,
    },
    Experiment {
        id: "sc.kill-write-variant",
        section: Section::Seccomp,
        asserts: "with the seed's commented write rule enabled nothing is printed and the program dies by SIGSYS",
        needs: BUILD,
        control: None,
        body: kill_write_variant,
        exclusive: None,
    },
    Experiment {
        id: "sc.execve-killed",
        section: Section::Seccomp,
        asserts: "a libseccomp KillProcess rule on execve: Seccomp: 2, Seccomp_filters: 1 in the child's status, then SIGSYS at execve",
        needs: &[Need::Root],
        control: Some("the same child without a filter"),
        body: execve_killed,
        exclusive: None,
    },
    Experiment {
        id: "sc.actions",
        section: Section::Seccomp,
        asserts: "KillProcess, KillThread (only the thread), Trap (SIGSYS, si_code SYS_SECCOMP, si_syscall execve), Errno(EPERM), Log behave as documented",
        needs: &[Need::Root],
        control: None,
        body: actions,
        exclusive: None,
    },
    Experiment {
        id: "sc.inherited",
        section: Section::Seccomp,
        asserts: "a filter survives fork and execve: a grandchild shows Seccomp: 2 / Seccomp_filters: 1 and its unshare gets EPERM",
        needs: &[Need::Root, Need::Tool(Tool::Unshare)],
        control: None,
        body: inherited,
        exclusive: None,
    },
    Experiment {
        id: "sc.default-profile-blocks-unshare",
        section: Section::Seccomp,
        asserts: "under the project's Docker-format default-like profile, applied with libseccomp, `unshare -U true` fails with EPERM",
        needs: &[Need::Root, Need::UserNamespaces, Need::Tool(Tool::Unshare)],
        control: Some("the same command unconfined"),
        body: default_profile_blocks_unshare,
        exclusive: None,
    },
    Experiment {
        id: "sc.unconfined-allows-unshare",
        section: Section::Seccomp,
        asserts: "without a filter `unshare -U true` succeeds and the status shows Seccomp: 0",
        needs: &[Need::UserNamespaces, Need::Tool(Tool::Unshare)],
        control: None,
        body: unconfined_allows_unshare,
        exclusive: None,
    },
];

pub static HELPER_OPS: &[(&str, HelperOp)] = &[
    ("seccomp-exec", op_exec),
    ("seccomp-profile", op_profile),
    ("seccomp-inherit", op_inherit),
];

/// Builds a variant of the seed's program with gcc into the experiment's
/// scratch directory (never the source tree).
fn build(ctx: &mut Ctx, name: &str, source: &str) -> anyhow::Result<PathBuf> {
    let dir = ctx.scratch()?;
    let c = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&c, source)?;
    run_ok(
        ctx.cmd("gcc")
            .arg("-o")
            .arg(&bin)
            .arg(&c)
            .arg("-lseccomp")
            .current_dir(&dir),
    )?;
    Ok(bin)
}

/// Runs a built program with a shell command on its stdin (what the shell
/// it execs would read), directly and through `sh` for `$?`.
fn run_program(ctx: &Ctx, bin: &std::path::Path) -> anyhow::Result<(crate::process::Ran, String)> {
    let input = "echo shell-ran\n";
    let mut child = ctx
        .cmd(bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output()?;
    use std::os::unix::process::ExitStatusExt;
    let direct = crate::process::Ran {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let sh = run_ok(ctx.cmd("sh").args([
        "-c",
        &format!(
            "printf '{}' | {} 2>/dev/null; echo \"status=$?\"",
            input.replace('\n', "\\n"),
            bin.display()
        ),
    ]))?;
    let status = sh
        .lines()
        .find_map(|l| l.strip_prefix("status="))
        .unwrap_or("")
        .to_string();
    Ok((direct, status))
}

fn seed_program(ctx: &mut Ctx, v: Variant) -> Outcome {
    let source = if v.isolated() {
        SEED_C.to_string()
    } else {
        SEED_C.replace(EXECVE_RULE, "\t/* control: no execve rule */")
    };
    if v.isolated() && !SEED_C.contains(EXECVE_RULE) {
        crate::broken!("the fixture no longer holds the seed's execve rule");
    }
    let bin = build(ctx, "seccomp", &source)?;
    let (r, sh_status) = run_program(ctx, &bin)?;
    ctx.observe("stdout", &r.stdout);
    ctx.observe("signal", r.signal);
    ctx.observe("exit_code", r.code);
    ctx.observe("shell_status", &sh_status);
    check_eq!(
        r.stdout.as_str(),
        "i will give you a shell\n",
        "what the program printed"
    );
    check_eq!(r.signal, Some(SIGSYS), "the signal the program died of");
    check_eq!(sh_status.as_str(), "159", "$? in a shell");
    Ok(())
}

fn kill_write_variant(ctx: &mut Ctx, _v: Variant) -> Outcome {
    if !SEED_C.contains(WRITE_RULE) {
        crate::broken!("the fixture no longer holds the seed's commented write rule");
    }
    let source = SEED_C.replace(WRITE_RULE, &WRITE_RULE.replace("//", ""));
    let bin = build(ctx, "seccomp-write", &source)?;
    let (r, sh_status) = run_program(ctx, &bin)?;
    ctx.observe("stdout", &r.stdout);
    ctx.observe("signal", r.signal);
    ctx.observe("shell_status", &sh_status);
    check_eq!(r.stdout.as_str(), "", "what the program printed");
    check_eq!(r.signal, Some(SIGSYS), "the signal the program died of");
    check_eq!(sh_status.as_str(), "159", "$? in a shell");
    Ok(())
}

fn state(pid: i32) -> Option<char> {
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.state)
}

fn execve_killed(ctx: &mut Ctx, v: Variant) -> Outcome {
    let action = if v.isolated() { "kill-process" } else { "none" };
    let mut child = Spawned::start(ctx.helper().args(["seccomp-exec", action, "--stop"]))?;
    let ready = child.read_line()?;
    check_eq!(ready.as_str(), "ready", "the helper's first line");
    let pid = child.pid();
    // The child stops itself after loading the filter, before the execve.
    wait_until(Duration::from_secs(5), || state(pid) == Some('T'));
    let status = crate::experiment::read(format!("/proc/{pid}/status"))?;
    let (mode, filters) = status_fields(&status);
    let mode_procfs = procfs::process::Process::new(pid)?.status()?.seccomp;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGCONT)?;
    let ws = child.wait()?;
    use std::os::unix::process::ExitStatusExt;
    ctx.observe("seccomp_mode", mode);
    ctx.observe("seccomp_mode_procfs", mode_procfs);
    ctx.observe("seccomp_filters", filters);
    ctx.observe("signal", ws.signal());
    ctx.observe("exit_code", ws.code());
    check_eq!(
        mode,
        Some(2),
        "Seccomp: (2 = filter mode) while the child lives"
    );
    check_eq!(mode_procfs, Some(2), "seccomp mode read through procfs");
    check_eq!(filters, Some(1), "Seccomp_filters:");
    check_eq!(ws.signal(), Some(SIGSYS), "the signal execve brought");
    Ok(())
}

fn helper_json(ctx: &Ctx, args: &[&str]) -> anyhow::Result<(crate::process::Ran, Value)> {
    let r = run(ctx.helper().args(args))?;
    let j = r
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Ok((r, j))
}

fn actions(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let mut seen = serde_json::Map::new();
    let (kp, _) = helper_json(ctx, &["seccomp-exec", "kill-process"])?;
    seen.insert(
        "kill_process".into(),
        json!({"signal": kp.signal, "stdout": kp.stdout}),
    );
    let (kt, ktj) = helper_json(ctx, &["seccomp-exec", "kill-thread"])?;
    seen.insert(
        "kill_thread".into(),
        json!({"exit": kt.code, "signal": kt.signal, "report": ktj}),
    );
    let (tr, trj) = helper_json(ctx, &["seccomp-exec", "trap"])?;
    seen.insert("trap".into(), json!({"exit": tr.code, "report": trj}));
    let (er, erj) = helper_json(ctx, &["seccomp-exec", "errno"])?;
    seen.insert("errno".into(), json!({"exit": er.code, "report": erj}));
    let (lg, _) = helper_json(ctx, &["seccomp-exec", "log"])?;
    seen.insert(
        "log".into(),
        json!({"exit": lg.code, "stdout": lg.stdout.trim()}),
    );
    ctx.observe("actions", &seen);

    check_eq!(
        kp.signal,
        Some(SIGSYS),
        "KillProcess: the signal the process died of"
    );
    check!(!kp.stdout.contains("exec-ran"), "KillProcess: the exec ran");
    check_eq!(kt.code, Some(0), "KillThread: the process exits normally");
    check_eq!(
        ktj["thread_gone"],
        json!(true),
        "KillThread: the execve thread is gone"
    );
    check_eq!(
        ktj["main_alive"],
        json!(true),
        "KillThread: the main thread lives on"
    );
    check_eq!(
        trj["si_signo"].as_i64(),
        Some(SIGSYS as i64),
        "Trap: the signal delivered"
    );
    check_eq!(
        trj["si_code"].as_i64(),
        Some(1),
        "Trap: si_code (SYS_SECCOMP = 1)"
    );
    check_eq!(
        trj["si_syscall"].as_i64(),
        Some(libc::SYS_execve),
        "Trap: si_syscall"
    );
    check_eq!(tr.code, Some(0), "Trap: the process survives its handler");
    check_eq!(
        erj["ret"].as_i64(),
        Some(-1),
        "Errno: execve's return value"
    );
    check_eq!(
        erj["errno"].as_str(),
        Some("EPERM"),
        "Errno: execve's errno"
    );
    check_eq!(er.code, Some(0), "Errno: the process lives on");
    check_eq!(lg.code, Some(0), "Log: the exec'd shell's exit");
    check_eq!(lg.stdout.trim(), "exec-ran", "Log: the call went through");
    Ok(())
}

fn inherited(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let out = run_ok(ctx.helper().arg("seccomp-inherit"))?;
    let (mode, filters) = status_fields(&out);
    let rc = out
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or("")
        .to_string();
    ctx.observe("grandchild_seccomp", mode);
    ctx.observe("grandchild_filters", filters);
    ctx.observe("unshare_rc", &rc);
    ctx.observe("output", &out);
    check_eq!(
        mode,
        Some(2),
        "Seccomp: of a grandchild (after fork and execve)"
    );
    check_eq!(filters, Some(1), "Seccomp_filters: of a grandchild");
    check!(
        out.contains("Operation not permitted"),
        "the grandchild's unshare was not refused with EPERM: {out}"
    );
    check_eq!(rc.as_str(), "1", "unshare's exit status in the grandchild");
    Ok(())
}

fn default_profile_blocks_unshare(ctx: &mut Ctx, v: Variant) -> Outcome {
    let profile = ctx.scratch()?.join("docker-default-like.json");
    std::fs::write(&profile, PROFILE)?;
    let r = if v.isolated() {
        run(ctx.helper().args([
            "seccomp-profile",
            &profile.to_string_lossy(),
            "--",
            "unshare",
            "-U",
            "true",
        ]))?
    } else {
        run(ctx.cmd("unshare").args(["-U", "true"]))?
    };
    ctx.observe("exit", r.code);
    ctx.observe("stderr", r.stderr.trim());
    check!(
        r.code != Some(125),
        "the profile could not be applied: {}",
        r.stderr.trim()
    );
    check_eq!(r.code, Some(1), "exit status of `unshare -U true`");
    check!(
        r.stderr.contains("unshare failed: Operation not permitted"),
        "unshare's message: {:?}",
        r.stderr.trim()
    );
    Ok(())
}

fn unconfined_allows_unshare(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let out = run_ok(ctx.cmd("sh").args([
        "-c",
        "grep '^Seccomp:' /proc/self/status; unshare -U true && echo unshare-ok",
    ]))?;
    let (mode, _) = status_fields(&out);
    ctx.observe("seccomp_mode", mode);
    ctx.observe("output", out.trim());
    check_eq!(mode, Some(0), "Seccomp: of an unconfined process");
    check!(
        out.contains("unshare-ok"),
        "`unshare -U true` failed unconfined: {out}"
    );
    Ok(())
}

// ---- helper ops: single-threaded children built to die ----

static SIGNO: AtomicI32 = AtomicI32::new(0);
static CODE: AtomicI32 = AtomicI32::new(0);
static SYSCALL: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigsys(sig: libc::c_int, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    SIGNO.store(sig, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo_t; for SIGSYS its union is
    // { void *call_addr; int syscall; unsigned arch; } after the three ints
    // and padding, i.e. `syscall` at byte 24 on x86_64.
    unsafe {
        CODE.store((*info).si_code, Ordering::SeqCst);
        SYSCALL.store(
            *((info as *const u8).add(24) as *const i32),
            Ordering::SeqCst,
        );
    }
}

fn execve_sh(script: &str) -> (i64, i32) {
    let path = CString::new("/bin/sh").unwrap_or_default();
    let args = [
        CString::new("sh").unwrap_or_default(),
        CString::new("-c").unwrap_or_default(),
        CString::new(script).unwrap_or_default(),
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: valid NUL-terminated strings and arrays; a raw syscall, as the
    // seed's program makes it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_execve,
            path.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    (ret, nix::errno::Errno::last_raw())
}

fn filter_on_execve(action: ScmpAction) -> Result<(), String> {
    let mut f = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| e.to_string())?;
    f.add_rule(
        action,
        ScmpSyscall::from_name("execve").map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    f.load().map_err(|e| e.to_string())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `seccomp-exec ACTION [--stop]`: a filter with ACTION on execve, then an
/// execve of `sh -c 'echo exec-ran'`. With --stop, print `ready` and stop
/// (SIGSTOP) between loading and the execve, so the parent can read status.
fn op_exec(args: &[String]) -> i32 {
    let action = args.first().map(String::as_str).unwrap_or("none");
    let stop = args.iter().any(|a| a == "--stop");
    let act = match action {
        "none" => None,
        "kill-process" => Some(ScmpAction::KillProcess),
        "kill-thread" => Some(ScmpAction::KillThread),
        "trap" => Some(ScmpAction::Trap),
        "errno" => Some(ScmpAction::Errno(libc::EPERM)),
        "log" => Some(ScmpAction::Log),
        other => {
            eprintln!("seccomp-exec: unknown action {other}");
            return 2;
        }
    };
    if action == "trap" {
        // SAFETY: installing a handler that only stores to atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
        }
    }
    if let Some(a) = act {
        if let Err(e) = filter_on_execve(a) {
            eprintln!("seccomp-exec: {e}");
            return 125;
        }
    }
    if stop {
        println!("ready");
        let _ = std::io::stdout().flush();
        let _ = nix::sys::signal::raise(nix::sys::signal::SIGSTOP);
    }
    let report = |v: Value| {
        println!("{v}");
        0
    };
    match action {
        "kill-thread" => {
            // The thread inherits the filter; only it must die.
            let _ = std::thread::spawn(|| {
                execve_sh("echo exec-ran");
            });
            let gone = wait_until(Duration::from_secs(5), || threads() == 1);
            report(json!({"main_alive": true, "thread_gone": gone}))
        }
        "trap" => {
            let (ret, errno) = execve_sh("echo exec-ran");
            report(json!({
                "si_signo": SIGNO.load(Ordering::SeqCst),
                "si_code": CODE.load(Ordering::SeqCst),
                "si_syscall": SYSCALL.load(Ordering::SeqCst),
                "ret": ret,
                "errno": errno,
            }))
        }
        "errno" => {
            let (ret, errno) = execve_sh("echo exec-ran");
            report(
                json!({"ret": ret, "errno": format!("{:?}", nix::errno::Errno::from_raw(errno))}),
            )
        }
        _ => {
            let (_, errno) = execve_sh("echo exec-ran");
            eprintln!("seccomp-exec: execve returned (errno {errno})");
            125
        }
    }
}

/// `seccomp-profile FILE -- CMD…`: apply a Docker-format profile for a
/// default container's capabilities, then exec CMD.
fn op_profile(args: &[String]) -> i32 {
    let Some(file) = args.first() else {
        eprintln!("usage: seccomp-profile FILE -- CMD...");
        return 2;
    };
    let cmd: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("seccomp-profile: reading {file}: {e}");
            return 125;
        }
    };
    let kernel = crate::host::parse_kernel_version(
        &nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let filter = match translate(&text, DOCKER_DEFAULT_CAPS, kernel) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("seccomp-profile: {file}: {e}");
            return 125;
        }
    };
    if let Err(e) = filter.load() {
        eprintln!("seccomp-profile: {e}");
        return 125;
    }
    helper::exec(&cmd)
}

/// `seccomp-inherit`: Errno(EPERM) on unshare, then execve a shell whose
/// forked children report their seccomp status and try unshare.
fn op_inherit(_args: &[String]) -> i32 {
    let load = || -> Result<(), String> {
        let mut f = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| e.to_string())?;
        f.add_rule(
            ScmpAction::Errno(libc::EPERM),
            ScmpSyscall::from_name("unshare").map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        f.load().map_err(|e| e.to_string())
    };
    if let Err(e) = load() {
        eprintln!("seccomp-inherit: {e}");
        return 125;
    }
    helper::exec(&[
        "/bin/sh".into(),
        "-c".into(),
        "grep -E '^Seccomp(_filters)?:' /proc/self/status; unshare -U true 2>&1; echo rc=$?".into(),
    ])
}
