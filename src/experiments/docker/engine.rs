//! The rows about the engine itself: its process tree (dockerd, containerd,
//! the shim), `docker export` as a rootfs, and its housekeeping commands.

use super::NO_NET;
use crate::docker as dk;
use crate::experiment::{Ctx, Outcome, Problem, Variant};
use crate::helper::docker::PivotView;
use crate::process::{run, wait_until};
use crate::{broken, check, check_eq};
use std::path::Path;
use std::time::Duration;

/// `PID [cmdline]`, the command line cut at 120 bytes so that the measured
/// tree stays readable.
fn describe_proc(p: &procfs::process::Process) -> String {
    let cmd = p.cmdline().unwrap_or_default().join(" ");
    let cmd = if cmd.len() > 120 {
        format!("{}…", &cmd[..120])
    } else {
        cmd
    };
    format!("{} [{}]", p.pid, cmd)
}

pub(super) fn process_tree(ctx: &mut Ctx, _v: Variant) -> Outcome {
    use procfs::process::{all_processes, Process};
    let c = dk::run_shell(ctx, NO_NET)?;
    let init = dk::init_pid(ctx, &c)?;
    let ip = Process::new(init)?;
    let shim = Process::new(ip.stat()?.ppid)?;
    let shim_cmd = shim.cmdline()?;
    let all: Vec<Process> = all_processes()?.flatten().collect();
    let named = |n: &str| -> Vec<&Process> {
        all.iter()
            .filter(|p| p.stat().map(|s| s.comm == n).unwrap_or(false))
            .collect()
    };
    let dockerd = named("dockerd");
    let containerd = named("containerd");
    let no_runc = wait_until(Duration::from_secs(5), || runc_of(&c.id).is_empty());
    ctx.measure("process_tree", tree_lines(&all, &dockerd, &shim, &ip));
    // The id in it names this run's container; the binary is the fact.
    ctx.measure("shim_cmdline", &shim_cmd);
    ctx.observe("shim_binary", shim_cmd.first());
    // Their pids name this boot; that each runs is the fact.
    ctx.measure(
        "dockerd_pids",
        dockerd.iter().map(|p| p.pid).collect::<Vec<_>>(),
    );
    ctx.measure(
        "containerd_pids",
        containerd.iter().map(|p| p.pid).collect::<Vec<_>>(),
    );
    ctx.observe("dockerd_running", !dockerd.is_empty());
    ctx.observe("containerd_running", !containerd.is_empty());
    ctx.observe("runc_for_this_container", runc_of(&c.id));
    check_shim(&shim_cmd, &c.id)?;
    check!(!dockerd.is_empty(), "no dockerd process");
    check!(!containerd.is_empty(), "no containerd process");
    check!(
        no_runc,
        "a runc process for {} stays resident: {:?}",
        c.id,
        runc_of(&c.id)
    );
    Ok(())
}

/// The runc processes naming container `id`. runc runs only while it
/// creates/starts/execs; one still naming this container after `docker run
/// -d` returned would be resident. Others' containers may have a runc in
/// flight, so only ours is asserted; the caller polls so that a just-exiting
/// runc has time to be reaped.
fn runc_of(id: &str) -> Vec<i32> {
    procfs::process::all_processes()
        .map(|ps| {
            ps.flatten()
                .filter(|p| {
                    let comm = p.stat().map(|s| s.comm).unwrap_or_default();
                    comm.starts_with("runc")
                        && p.cmdline()
                            .unwrap_or_default()
                            .iter()
                            .any(|a| a.contains(id))
                })
                .map(|p| p.pid)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
}

/// The measured tree: each dockerd with its children, then the shim and
/// the container's init below it.
fn tree_lines(
    all: &[procfs::process::Process],
    dockerd: &[&procfs::process::Process],
    shim: &procfs::process::Process,
    init: &procfs::process::Process,
) -> Vec<String> {
    let mut tree = Vec::new();
    for d in dockerd {
        tree.push(format!("dockerd {}", describe_proc(d)));
        for k in all
            .iter()
            .filter(|p| p.stat().map(|s| s.ppid == d.pid).unwrap_or(false))
        {
            tree.push(format!("  └─ {}", describe_proc(k)));
        }
    }
    tree.push(format!(
        "ppid {} └─ {}",
        shim.stat().map(|s| s.ppid).unwrap_or(0),
        describe_proc(shim)
    ));
    tree.push(format!(
        "       └─ {} (the container's init)",
        describe_proc(init)
    ));
    tree
}

/// The init's parent is containerd's runc shim for this container, in
/// Docker's containerd namespace.
fn check_shim(shim_cmd: &[String], id: &str) -> Outcome {
    let argv0 = shim_cmd
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    check_eq!(
        argv0.as_deref(),
        Some("containerd-shim-runc-v2"),
        "the parent of the container's init"
    );
    let flag = |f: &str| {
        shim_cmd
            .iter()
            .position(|a| a == f)
            .and_then(|i| shim_cmd.get(i + 1))
            .cloned()
    };
    check_eq!(flag("-id"), Some(id.to_string()), "the shim's -id");
    let ns = flag("-namespace");
    check_eq!(
        ns.as_deref(),
        Some("moby"),
        "the shim's containerd namespace"
    );
    Ok(())
}

pub(super) fn export_rootfs(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let c = dk::create(ctx, &["true"])?;
    let root = ctx.scratch()?.join("rootfs");
    std::fs::create_dir_all(&root)?;
    let listed = export_into(ctx, &c.id, &root)?;
    let has = |p: &str| root.join(p).symlink_metadata().is_ok();
    let sh_target = std::fs::read_link(root.join("bin/sh")).ok();
    let top: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&root)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    };
    ctx.observe("tar_entries", listed);
    ctx.observe("top_level", &top);
    ctx.observe(
        "bin_sh_link",
        sh_target.as_ref().map(|p| p.display().to_string()),
    );
    check!(has("bin/busybox"), "the exported tree has no /bin/busybox");
    check!(has("bin/sh"), "the exported tree has no /bin/sh");
    let (seen, sh_says) = pivot_into(ctx, &root)?;
    let inside_top = seen.root.clone();
    ctx.observe("pivot", &seen);
    ctx.observe("pivot_sh_echo_pid", &sh_says);
    check_eq!(inside_top, top, "/ after pivot_root vs the exported tree");
    check_eq!(seen.pid, 1, "getpid() after pivot_root in a new pid ns");
    check_eq!(seen.proc_pids, vec![1], "pids in the new /proc");
    check_eq!(sh_says.as_str(), "1", "the rootfs's own /bin/sh: echo $$");
    Ok(())
}

/// The seed's pipe, `docker export ID | tar -C ROOT -xvf -`; the number of
/// entries tar listed.
fn export_into(ctx: &Ctx, id: &str, root: &Path) -> Result<usize, Problem> {
    let mut exp = dk::docker(ctx)
        .args(["export", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let out = exp
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("export stdout"))?;
    let tar = ctx
        .cmd("tar")
        .arg("-C")
        .arg(root)
        .args(["-xvf", "-"])
        .stdin(out)
        .output()?;
    let es = exp.wait()?;
    if !es.success() || !tar.status.success() {
        broken!(
            "docker export | tar failed: export {es}, tar {}: {}",
            tar.status,
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&tar.stdout).lines().count())
}

/// mnt.rootfs-pivot on the exported tree: new mnt+pid namespaces,
/// pivot_root into it, and look around; the helper's report and what the
/// tree's own `sh` says `$$` is.
fn pivot_into(ctx: &Ctx, root: &Path) -> Result<(PivotView, String), Problem> {
    let r = run(ctx.helper().arg("docker-pivot").arg(root))?;
    let mut lines = r.stdout.lines();
    let seen: PivotView = match lines.next().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        _ => broken!(
            "helper docker-pivot printed no report (status {}): {}",
            r.shell_status(),
            r.stderr.trim()
        ),
    };
    let sh_says = lines.next().unwrap_or_default().trim().to_string();
    Ok((seen, sh_says))
}

/// `docker container prune` of one label. The engine runs one prune at a
/// time and refuses a second ("a prune operation is already running"):
/// another run of the suite pruning at the same moment is not a failure
/// here, so wait for it (bounded).
fn prune(ctx: &Ctx, label: &str) -> anyhow::Result<String> {
    let args = ["container", "prune", "-f", "--filter", label];
    for _ in 0..50 {
        match dk::docker_ok(ctx, &args) {
            Err(e) if e.to_string().contains("prune operation is already running") => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
    dk::docker_ok(ctx, &args)
}

pub(super) fn housekeeping(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let a = dk::create(ctx, &["true"])?;
    let b = dk::create(ctx, &["true"])?;
    let image = dk::image()?;
    let label = format!("label={}={}", dk::LABEL, ctx.tag);
    let mut want = vec![a.name.clone(), b.name.clone()];
    want.sort();
    // The seed's commands, unfiltered, then narrowed to this experiment.
    let ps_all = dk::docker_ok(ctx, &["ps", "-a", "--format", "{{.Names}}"])?;
    let ls_all = dk::docker_ok(ctx, &["container", "ls", "-a", "--format", "{{.Names}}"])?;
    let images = dk::docker_ok(
        ctx,
        &["image", "ls", "-a", "--format", "{{.Repository}}:{{.Tag}}"],
    )?;
    let ps_ours = ps_names(ctx, &label)?;
    // The seed's `docker system prune`, on the suite's own objects only.
    let pruned = prune(ctx, &label)?;
    let ps_after = ps_names(ctx, &label)?;
    let by_api = dk::containers_of(&ctx.tag);
    ctx.observe(
        "ps_a_lists",
        sorted_lines(&ps_all)
            .iter()
            .filter(|n| want.contains(n))
            .count(),
    );
    ctx.measure("image", &image);
    ctx.measure("prune_output", pruned.trim());
    ctx.observe("ps_after_prune", &ps_after);
    ctx.observe("api_after_prune", &by_api);
    check!(
        want.iter().all(|n| ps_all.lines().any(|l| l.trim() == n)),
        "docker ps -a does not list {want:?}"
    );
    check!(
        want.iter().all(|n| ls_all.lines().any(|l| l.trim() == n)),
        "docker container ls -a does not list {want:?}"
    );
    check!(
        images.lines().any(|l| l.trim() == image),
        "docker image ls -a does not list {image}"
    );
    check_eq!(ps_ours, want, "docker ps -a --filter {label}");
    check!(
        pruned.contains(&a.id) && pruned.contains(&b.id),
        "the prune did not report both containers: {pruned:?}"
    );
    check!(ps_after.is_empty(), "left after the prune: {ps_after:?}");
    check!(by_api.is_empty(), "the engine still lists: {by_api:?}");
    Ok(())
}

/// The non-empty lines of a listing, trimmed and sorted.
fn sorted_lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

/// The names `docker ps -a` lists under one label filter, sorted.
fn ps_names(ctx: &Ctx, label: &str) -> anyhow::Result<Vec<String>> {
    let out = dk::docker_ok(
        ctx,
        &["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
    )?;
    Ok(sorted_lines(&out))
}
