//! Catalogue section 1: the PID namespace.

use crate::experiment::{Ctx, Experiment, Outcome, Section, Variant};
use crate::helper::HelperOp;
use crate::needs::{Need, Tool};
use crate::process::run;
use crate::{check, check_eq};
use serde_json::Value;

pub static EXPERIMENTS: &[Experiment] = &[Experiment {
    id: "pid.init-is-pid-1",
    section: Section::Pid,
    asserts: "the first process of a new pid ns has getpid()==1, getppid()==0; `echo $$` prints 1",
    needs: &[Need::Root, Need::Tool(Tool::Unshare)],
    control: Some("unshare without --pid"),
    body: init_is_pid_1,
    exclusive: None,
}];

pub static HELPER_OPS: &[(&str, HelperOp)] = &[];

/// Runs `isocheck helper whoami` inside `isocheck helper unshare ARGS`.
pub fn whoami_in(ctx: &Ctx, unshare_args: &[&str]) -> anyhow::Result<Value> {
    let exe = crate::helper::helper_path();
    let mut c = ctx.helper();
    c.arg("unshare")
        .args(unshare_args)
        .arg("--")
        .arg(&exe)
        .args(["helper", "whoami"]);
    let out = crate::process::run_ok(&mut c)?;
    Ok(serde_json::from_str(out.trim())?)
}

fn init_is_pid_1(ctx: &mut Ctx, v: Variant) -> Outcome {
    // CLI layer: the seed's command.
    let mut args = vec!["--fork"];
    if v.isolated() {
        args.extend(["--pid", "--mount-proc"]);
    }
    let r = run(ctx
        .cmd("unshare")
        .args(&args)
        .args(["/bin/sh", "-c", "echo $$"]))?;
    check!(r.success(), "unshare {args:?} failed: {}", r.stderr.trim());
    let shell_pid = r.stdout.trim().to_string();
    ctx.observe("echo_dollar_dollar", &shell_pid);

    // Kernel layer: unshare(2) + fork, getpid()/getppid() in the child.
    let ns: &[&str] = if v.isolated() {
        &["--ns", "pid,mnt", "--mount-proc"]
    } else {
        &["--fork"]
    };
    let me = whoami_in(ctx, ns)?;
    ctx.observe("pid_inside", &me["pid"]);
    ctx.observe("ppid_inside", &me["ppid"]);
    check_eq!(shell_pid.as_str(), "1", "`echo $$` inside");
    check_eq!(me["pid"].as_i64(), Some(1), "getpid() inside");
    check_eq!(me["ppid"].as_i64(), Some(0), "getppid() inside");
    Ok(())
}
