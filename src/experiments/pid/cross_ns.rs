//! Signals across the pid-namespace boundary (LTP pidns06, pidns10,
//! pidns16): a process inside cannot name one outside, a lone init has
//! nobody to kill, and si_pid hides a sender the receiver cannot see.

use super::*;
use crate::helper::pid_signals::CrossSignals;

/// A `sleep` the row may try to kill from inside: a suite process.
fn victim(ctx: &Ctx) -> anyhow::Result<Spawned> {
    Spawned::start(ctx.cmd("sleep").arg("60"))
}

fn alive(s: &mut Spawned) -> bool {
    s.child.try_wait().ok().flatten().is_none()
}

/// The body of `pid.signals-cross-ns`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn signals_cross_ns(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut target = victim(ctx)?;
    let newns = if v.isolated() { "yes" } else { "no" };
    let vpid = target.pid().to_string();
    let r = run(ctx
        .helper()
        .args(["pidns-cross", "--victim", &vpid, "--newns", newns]))?;
    if !r.success() {
        broken!(
            "pidns-cross: status {}: {}",
            r.shell_status(),
            r.stderr.trim()
        );
    }
    let s: CrossSignals = serde_json::from_str(r.stdout.trim())?;
    // A SIGKILL that was sent has landed by the time kill(2) returned.
    let lives = alive(&mut target);
    ctx.observe("kill_outside", &s.kill_outside);
    ctx.observe("outside_process_lives", lives);
    ctx.observe("kill_all_as_lone_init", &s.kill_all);
    ctx.observe("si_pid_from_parent_ns_is_0", s.si_pid_from_parent == 0);
    ctx.measure("si_pid_from_parent_ns", s.si_pid_from_parent);
    ctx.observe("si_pid_is_sender_pid", s.si_pid_from_child == s.child_pid);
    ctx.measure("init_pid_and_child_pid", [s.my_pid, s.child_pid]);
    check!(
        s.kill_outside.as_deref() == Some("ESRCH") && lives,
        "kill() of a process outside: {:?}, it lives: {lives}",
        s.kill_outside
    );
    check_eq!(
        s.kill_all,
        Some(Some("ESRCH".to_string())),
        "kill(-1, SIGKILL) of a lone ns init"
    );
    check_eq!(
        s.si_pid_from_parent,
        0,
        "si_pid of a signal from the parent ns"
    );
    check!(
        s.si_pid_from_child == s.child_pid && s.child_pid > 0,
        "si_pid {} from a child whose pid is {}",
        s.si_pid_from_child,
        s.child_pid
    );
    cross_cli(ctx, v)
}

/// `unshare --fork --pid sh -c 'kill -9 PID'` of a process outside.
fn cross_cli(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut target = victim(ctx)?;
    let script = format!("kill -9 {}", target.pid());
    let mut c = ctx.cmd("unshare");
    if v.isolated() {
        c.args(["--fork", "--pid"]);
    }
    let r = run(c.args(["sh", "-c", &script]))?;
    let lives = alive(&mut target);
    ctx.observe("cli_kill_status", r.shell_status());
    ctx.observe("cli_outside_process_lives", lives);
    check!(
        !r.success() && r.stderr.contains("No such process") && lives,
        "`kill -9` from inside: status {}, {:?}, the target lives: {lives}",
        r.shell_status(),
        r.stderr.trim()
    );
    Ok(())
}
