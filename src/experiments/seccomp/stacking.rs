//! Seccomp beyond one filter (kselftest seccomp_bpf): who may install a
//! filter, which action wins when filters stack, and what a user
//! notification listener is told about the calling task.

use crate::experiment::{Ctx, Outcome, Variant};
use crate::experiments::helper_reply;
use crate::helper::sc_notif::NotifReport;
use crate::helper::sc_stack::{InstallRules, Stacked, ERRNO_PAIR, PRECEDENCE};
use crate::{broken, check, check_eq};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------
// sc.install-rules

/// The body of `sc.install-rules`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn install_rules(ctx: &mut Ctx, v: Variant) -> Outcome {
    let mut args = vec!["sc-install-rules"];
    if !v.isolated() {
        args.push("--keep-caps");
    }
    let r: InstallRules = helper_reply(ctx, &args)?;
    ctx.observe("without_nnp", &r.without_nnp);
    ctx.observe("without_nnp_cap_eff", &r.without_nnp_cap_eff);
    ctx.observe("with_nnp", &r.with_nnp);
    ctx.observe("tsync_threads", &r.tsync_threads);
    ctx.observe("plain_threads", &r.plain_threads);
    check_eq!(
        r.without_nnp.as_deref(),
        Some("EACCES"),
        "install without no_new_privs and without CAP_SYS_ADMIN"
    );
    check_eq!(r.with_nnp, None, "install with no_new_privs (errno)");
    check_eq!(
        r.tsync_threads,
        vec![2, 2, 2],
        "Seccomp: of the 3 threads after TSYNC"
    );
    let mut plain = r.plain_threads.clone();
    plain.sort();
    check_eq!(
        plain,
        vec![0, 0, 2],
        "Seccomp: of the 3 threads without TSYNC"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// sc.filter-precedence

/// What getppid gives under an action alone (the helper's words).
fn alone(action: &str) -> String {
    match action {
        "kill" => "kill".into(),
        "trap" => "trap".into(),
        "errno" => format!("errno:{ERRNO_PAIR}"),
        // No tracer: the call fails with ENOSYS.
        "trace" => format!("errno:{}", libc::ENOSYS),
        _ => "allowed".into(),
    }
}

/// The body of `sc.filter-precedence`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn filter_precedence(ctx: &mut Ctx, v: Variant) -> Outcome {
    let names: Vec<&str> = PRECEDENCE.iter().map(|p| p.0).collect();
    let mut sets: Vec<Vec<String>> = Vec::new();
    let mut pairs = Vec::new();
    for (i, a) in names.iter().enumerate() {
        for (j, b) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            pairs.push((*a, *b, names[i.min(j)]));
            sets.push(match v {
                Variant::Isolated => vec![a.to_string(), b.to_string()],
                Variant::Control => vec![b.to_string()],
            });
        }
    }
    let orders = [["errno:12", "errno:13"], ["errno:13", "errno:12"]];
    for o in orders {
        sets.push(o.iter().map(|s| s.to_string()).collect());
    }
    let sets_json = serde_json::to_string(&sets)?;
    let got: Vec<Stacked> = helper_reply(ctx, &["sc-precedence", "--sets", &sets_json])?;
    if got.len() != sets.len() {
        broken!(
            "sc-precedence answered {} of {} sets",
            got.len(),
            sets.len()
        );
    }
    let mut seen = BTreeMap::new();
    for ((a, b, _), s) in pairs.iter().zip(&got) {
        seen.insert(format!("{a}+{b}"), s.result.clone());
    }
    ctx.observe("pairs", &seen);
    for ((a, b, strongest), s) in pairs.iter().zip(&got) {
        check_eq!(s.result, alone(strongest), "getppid under {a} then {b}");
    }
    let order: Vec<&str> = got[pairs.len()..]
        .iter()
        .map(|s| s.result.as_str())
        .collect();
    ctx.observe("errno_order", &order);
    check_eq!(
        order,
        vec!["errno:13", "errno:12"],
        "two ERRNO filters: the errno returned"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// sc.user-notif-pid-translation

/// The body of `sc.user-notif-pid-translation`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn user_notif(ctx: &mut Ctx, v: Variant) -> Outcome {
    let other = if v.isolated() { "yes" } else { "no" };
    let sib: NotifReport = helper_reply(ctx, &["sc-notif", "--sibling", other])?;
    let same: NotifReport = helper_reply(ctx, &["sc-notif", "--sibling", "no"])?;
    ctx.observe("sibling_ns_req_pid", sib.req_pid);
    let same_pid_matches = same.req_pid as i32 == same.task_pid && same.req_pid != 0;
    ctx.observe("same_ns_req_pid_is_task_pid", same_pid_matches);
    ctx.observe("second_listener", &same.second_listener);
    ctx.observe("send_after_death", &same.send_after_death);
    // Pids differ from run to run: measurements, not facts.
    ctx.measure("sibling_ns_task_pid", sib.task_pid);
    ctx.measure("same_ns_pids", [same.req_pid as i32, same.task_pid]);
    if sib.req_nr as i64 != libc::SYS_getppid {
        broken!(
            "the listener was told of syscall {}, not getppid",
            sib.req_nr
        );
    }
    check_eq!(
        sib.req_pid,
        0,
        "req.pid for a task in a sibling pid namespace"
    );
    check!(
        same_pid_matches,
        "req.pid {} in one pid namespace, the task is {}",
        same.req_pid,
        same.task_pid
    );
    check_eq!(
        same.second_listener.as_deref(),
        Some("EBUSY"),
        "a second listener on the chain"
    );
    check_eq!(
        same.send_after_death.as_deref(),
        Some("ENOENT"),
        "NOTIF_SEND after the task died"
    );
    Ok(())
}
