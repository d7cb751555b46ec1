//! The memory group's files: creation and ownership, limit read-back and
//! parsing, the v1 kmem limit, and placing a process in a group.

use super::*;

// ---------------------------------------------------------------------------
// cg.create-group

/// The controller files the host's form must have in every memory group.
fn memory_files(v: Version) -> &'static [&'static str] {
    match v {
        Version::V1 => &[
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.failcnt",
            "memory.oom_control",
        ],
        Version::V2 => &["memory.max", "memory.current", "memory.events"],
    }
}

/// Which of the group's memory files exist and who owns them.
fn inspect_ownership(g: &Group) -> anyhow::Result<Value> {
    let mut files = serde_json::Map::new();
    for f in memory_files(g.version()) {
        let owner = cgroups::owner(&g.file(f)).ok();
        files.insert((*f).into(), json!(owner));
    }
    Ok(json!({
        "dir_exists": g.path.is_dir(),
        "dir_owner": cgroups::owner(&g.path).ok(),
        "files": files,
        // -a leaves the tasks file to -t (root by default); recorded only.
        "tasks_owner": cgroups::owner(&g.file("tasks")).ok(),
    }))
}

fn owned_by(seen: &Value, uid: u32) -> bool {
    seen["dir_exists"] == json!(true)
        && seen["dir_owner"] == json!(uid)
        && seen["files"]
            .as_object()
            .is_some_and(|m| m.values().all(|o| *o == json!(uid)))
}

/// The body of `cg.create-group`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn create_group(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let user = "nobody";
    let Some(u) = nix::unistd::User::from_name(user)? else {
        return Err(Problem::Unmet(format!("no user {user:?} on this host")));
    };
    let uid = u.uid.as_raw();
    ctx.observe("user", json!({ "name": user, "uid": uid }));

    // The seed: `cgcreate -a USER -g memory:NAME`.
    let g = cgcreate(ctx, "cgcreate", &["-a", user])?;
    let cli = inspect_ownership(&g)?;
    ctx.observe("cgcreate", &cli);

    // The same by hand: a bare mkdir. What is asserted is what the kernel
    // provides: it populates the new directory with the controller's files,
    // owned by the creator (root here), with nothing chowned by the suite.
    let g2 = new_group(ctx, Controller::Memory, "mkdir")?;
    let fs = inspect_ownership(&g2)?;
    ctx.observe("mkdir", &fs);

    check!(
        owned_by(&cli, uid),
        "cgcreate -a {user}: group {} is not as asked: {cli}",
        g.path.display()
    );
    check!(
        owned_by(&fs, 0),
        "mkdir: the kernel did not give group {} the memory controller's files, owned by the creator: {fs}",
        g2.path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.limit-readback

/// The body of `cg.limit-readback`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn limit_readback(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "limit")?;
    let file = g.file(g.memory_limit_file());
    let written = 10_000_000u64;
    let want = cgroups::page_rounded(written, page());
    ctx.observe("file", file.display().to_string());
    ctx.observe("written", written);
    ctx.observe("page_size", page());
    ctx.observe("expected", want);

    // The seed's way: a shell's echo into the file.
    let r = run(ctx
        .cmd("sh")
        .args(["-c", "echo 10000000 > \"$0\""])
        .arg(&file))?;
    check!(
        r.success(),
        "echo > {}: {}",
        file.display(),
        r.stderr.trim()
    );
    let by_shell = g.memory_limit()?;
    ctx.observe("read_after_echo", by_shell);

    // write(2) of the bare number after resetting to unlimited.
    g.set_memory_limit(Limit::Max)?;
    g.write(g.memory_limit_file(), &written.to_string())?;
    let by_write = g.memory_limit()?;
    ctx.observe("read_after_write", by_write);

    check_eq!(by_shell, Limit::Value(want), "limit read back after echo");
    check_eq!(
        by_write,
        Limit::Value(want),
        "limit read back after write(2)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.limit-parsing

/// What a limit write should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The write succeeds and the file then reads this limit.
    Reads(Limit),
    /// The write is refused with EINVAL.
    Einval,
}

/// The catalogue's cases (LTP memcg_limit_in_bytes), computed from the page
/// size and phrased in the host's form.
pub fn parse_cases(v: Version, page: u64) -> Vec<(String, Parse)> {
    let mut c = vec![
        ((page + 1).to_string(), Parse::Reads(Limit::Value(page))),
        ((page - 1).to_string(), Parse::Reads(Limit::Value(0))),
        ("1".into(), Parse::Reads(Limit::Value(0))),
        ("1.0".into(), Parse::Einval),
        ("1xx".into(), Parse::Einval),
        ("xx".into(), Parse::Einval),
    ];
    match v {
        Version::V1 => c.push(("-1".into(), Parse::Reads(Limit::Max))),
        Version::V2 => {
            c.push(("max".into(), Parse::Reads(Limit::Max)));
            // v2 compares against "max" only: "-1" is no number to memparse.
            c.push(("-1".into(), Parse::Einval));
        }
    }
    c
}

/// The body of `cg.limit-parsing`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn limit_parsing(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "parse")?;
    let v = g.version();
    let base = Limit::Value(8 << 20);
    let mut seen = serde_json::Map::new();
    let mut wrong = Vec::new();
    for (input, want) in parse_cases(v, page()) {
        g.set_memory_limit(base)?;
        let res = g.write(g.memory_limit_file(), &input);
        let read = g.memory_limit()?;
        let got = match &res {
            Ok(()) => Parse::Reads(read),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Parse::Einval,
            Err(e) => broken!("writing {input:?}: unexpected {e}"),
        };
        seen.insert(
            input.clone(),
            json!({
                "errno": res.as_ref().err().map(errno_of),
                "read_back": read,
            }),
        );
        if got != want {
            wrong.push(format!("{input:?}: got {got:?}, expected {want:?}"));
        }
        // A refused write must leave the old limit in place.
        if got == Parse::Einval && read != base {
            wrong.push(format!(
                "{input:?} was refused but the limit changed from {base:?} to {read:?}"
            ));
        }
    }
    ctx.observe("version", v);
    ctx.observe("cases", Value::Object(seen));
    check!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.kmem-limit

/// What writing 10000000 to `memory.kmem.limit_in_bytes` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kmem {
    /// The file does not exist.
    Absent,
    /// The write failed with ENOTSUPP (524, kernel-internal: "Unknown error 524").
    RefusedEnotsupp,
    /// The write failed with another error.
    RefusedOther,
    /// Accepted, and the page-rounded limit reads back.
    Enforced,
    /// Accepted, and the limit still reads unlimited.
    NoEffect,
    /// Accepted, some other value reads back.
    AcceptedOther,
}

const ENOTSUPP: i32 = 524;

/// What the kernel documents for its version (Documentation/admin-guide/
/// cgroup-v1/memory.rst and the commits behind it):
/// - before 5.16 the kmem limit is set and enforced (deprecated since 5.4);
/// - 5.16 (58056f77502f) writes fail with ENOTSUPP;
/// - 6.1 (86327e8eb94c) drops the file;
/// - 6.6 (4597648fddea, backported to 6.1.y / 6.5.y stable) brings it back
///   as a no-op that warns once: any write succeeds and changes nothing.
pub fn kmem_documented(ver: (u32, u32, u32)) -> &'static [Kmem] {
    let (a, b, _) = ver;
    let v = (a, b);
    if v < (5, 16) {
        &[Kmem::Enforced]
    } else if v < (6, 1) {
        &[Kmem::RefusedEnotsupp]
    } else if v < (6, 6) {
        // Which 6.1.y..6.5.y carry the backport is a stable-series detail.
        &[Kmem::Absent, Kmem::NoEffect]
    } else {
        &[Kmem::NoEffect]
    }
}

/// The body of `cg.kmem-limit`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn kmem_limit(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let g = new_group(ctx, Controller::Memory, "kmem")?;
    let f = "memory.kmem.limit_in_bytes";
    let host = HostFacts::get();
    let written = 10_000_000u64;
    let outcome = if !g.has(f) {
        ctx.observe("errno", Value::Null);
        Kmem::Absent
    } else {
        let before = g.read(f)?.trim().to_string();
        // The seed's command, recorded next to the raw write.
        let r = run(ctx
            .cmd("sh")
            .args(["-c", "echo 10000000 > \"$0\""])
            .arg(g.file(f)))?;
        ctx.observe(
            "seed_echo",
            json!({ "status": r.shell_status(), "stderr": r.stderr.trim() }),
        );
        // Undo whatever the echo did before the raw write is judged.
        let _ = g.write(f, "-1");
        let res = g.write(f, &written.to_string());
        let after = g.read(f)?.trim().to_string();
        ctx.observe("before", &before);
        ctx.observe("read_back", &after);
        ctx.observe("errno", res.as_ref().err().map(errno_of));
        let shell_ok = r.success();
        if shell_ok != res.is_ok() {
            broken!(
                "the shell's echo (status {}) and write(2) ({res:?}) disagree",
                r.shell_status()
            );
        }
        match res {
            Err(e) if e.raw_os_error() == Some(ENOTSUPP) => Kmem::RefusedEnotsupp,
            Err(_) => Kmem::RefusedOther,
            Ok(()) if after == cgroups::page_rounded(written, page()).to_string() => Kmem::Enforced,
            Ok(()) if after == before => Kmem::NoEffect,
            Ok(()) => Kmem::AcceptedOther,
        }
    };
    let documented = kmem_documented(host.kernel_version);
    ctx.observe("kernel", &host.kernel);
    ctx.observe("outcome", outcome);
    ctx.observe("documented", documented);
    check!(
        documented.contains(&outcome),
        "kernel {}: memory.kmem.limit_in_bytes gave {outcome:?}, documented {documented:?}",
        host.kernel
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// cg.cgexec-places-process

/// Where a parked process is, seen from /proc and from the group.
fn placement(ctx: &mut Ctx, key: &str, g: &Group, s: &mut Spawned) -> anyhow::Result<bool> {
    let pid = parked_pid(s)?;
    let in_proc = cgroups::process_group(pid, &g.hier)?;
    let procs = g.procs()?;
    let want = format!("/{}", g.relative());
    ctx.observe(
        key,
        json!({
            "pid_is_the_spawned_one": pid == s.pid(), "proc_cgroup": in_proc,
            "expected": want, "cgroup_procs_lists_it": procs.contains(&pid),
        }),
    );
    Ok(pid == s.pid() && in_proc.as_deref() == Some(want.as_str()) && procs.contains(&pid))
}

/// The body of `cg.cgexec-places-process`; its entry in `EXPERIMENTS` says what it asserts.
pub(super) fn cgexec_places_process(ctx: &mut Ctx, _v: Variant) -> Outcome {
    let exe = exe();
    // The seed: cgcreate, then cgexec -g memory:NAME CMD.
    let g = cgcreate(ctx, "cgexec", &[])?;
    let mut s =
        Spawned::start(
            ctx.cmd("cgexec")
                .args(["-g", &g.spec(), &exe, "helper", "cg-park"]),
        )?;
    let cli = placement(ctx, "cgexec", &g, &mut s)?;
    s.kill();

    // The same by hand: write our pid to cgroup.procs, then exec.
    let g2 = new_group(ctx, Controller::Memory, "procs")?;
    let procs = g2.procs_file().to_string_lossy().into_owned();
    let mut s2 = Spawned::start(ctx.helper().args([
        "cg-enter", "--procs", &procs, "--", &exe, "helper", "cg-park",
    ]))?;
    let fs = placement(ctx, "cgroup_procs_write", &g2, &mut s2)?;
    s2.kill();

    check!(
        cli,
        "cgexec -g {}: the process is not in the group",
        g.spec()
    );
    check!(
        fs,
        "write to {procs} then exec: the process is not in the group"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn v1_parse_cases_match_the_catalogue_on_4k_pages() {
        let c = parse_cases(Version::V1, 4096);
        let get = |k: &str| c.iter().find(|(i, _)| i == k).map(|(_, p)| p.clone());
        assert_eq!(get("4097"), Some(Parse::Reads(Limit::Value(4096))));
        assert_eq!(get("4095"), Some(Parse::Reads(Limit::Value(0))));
        assert_eq!(get("-1"), Some(Parse::Reads(Limit::Max)));
        for bad in ["1.0", "1xx", "xx"] {
            assert_eq!(get(bad), Some(Parse::Einval), "{bad}");
        }
        assert_eq!(get("max"), None);
    }

    #[test]
    fn v2_parse_cases_use_max() {
        let c = parse_cases(Version::V2, 65536);
        assert!(c.contains(&("max".into(), Parse::Reads(Limit::Max))));
        assert!(c.contains(&("-1".into(), Parse::Einval)));
        assert!(c.contains(&("65537".into(), Parse::Reads(Limit::Value(65536)))));
    }

    #[rstest]
    #[case((5, 10, 0), &[Kmem::Enforced])]
    #[case((5, 15, 200), &[Kmem::Enforced])]
    #[case((5, 16, 0), &[Kmem::RefusedEnotsupp])]
    #[case((6, 0, 19), &[Kmem::RefusedEnotsupp])]
    #[case((6, 1, 0), &[Kmem::Absent, Kmem::NoEffect])]
    #[case((6, 5, 13), &[Kmem::Absent, Kmem::NoEffect])]
    #[case((6, 6, 0), &[Kmem::NoEffect])]
    #[case((6, 18, 44), &[Kmem::NoEffect])]
    fn kmem_documented_by_version(#[case] v: (u32, u32, u32), #[case] want: &[Kmem]) {
        assert_eq!(kmem_documented(v), want);
    }

    #[test]
    fn ownership_check_needs_every_file() {
        let ok = json!({"dir_exists": true, "dir_owner": 65534,
                        "files": {"memory.max": 65534, "memory.events": 65534}});
        assert!(owned_by(&ok, 65534));
        let one_root = json!({"dir_exists": true, "dir_owner": 65534,
                              "files": {"memory.max": 0, "memory.events": 65534}});
        assert!(!owned_by(&one_root, 65534));
        let missing = json!({"dir_exists": true, "dir_owner": 65534,
                             "files": {"memory.max": null}});
        assert!(!owned_by(&missing, 65534));
    }
}
