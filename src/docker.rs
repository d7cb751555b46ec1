//! The Docker engine: probe, the suite's image, and the containers the
//! docker.* experiments run.
//!
//! Two channels to the engine, on purpose:
//! - the `docker` CLI for everything an experiment demonstrates, because the
//!   seed's steps are CLI commands (`docker run`, `docker exec`, ...);
//! - the engine's HTTP API on its unix socket for the harness's own
//!   bookkeeping (probe, the leak check's container list, removal). The leak
//!   check runs after every experiment of every section, and a Go CLI start
//!   costs tens of milliseconds where a socket round trip costs one.
//!
//! Nothing is pulled: the image is a busybox rootfs imported with
//! `docker import`, built once per run and removed by [`end_of_run`].

use crate::cleanup::{self, Tag};
pub use crate::dockerapi::{
    api, api_version, connect_error, engine_path, engine_pid, engine_present, negotiate,
    parse_api_version, parse_response, probe_engine, socket_path, Response,
};
use crate::process::{run, Ran};
use crate::scope::Scope;
use anyhow::{anyhow, bail, Context};
pub use image::{elf_has_interp, fnv1a64, image, suite_images};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod image;

/// The label every container of the suite carries: `isocheck.tag=<tag>`.
pub const LABEL: &str = "isocheck.tag";
/// Repository of the suite's image; the tag is `<busybox hash>-<run id>`.
pub const IMAGE_REPO: &str = "isocheck-busybox";
/// The label of the suite's image: `isocheck.run=<run id>`. Found by label,
/// an image is found even after it lost its tag.
pub const IMAGE_LABEL: &str = "isocheck.run";

/// The client to run: Debian's packaged client when present (it matches the
/// packaged engine), else whatever `docker` is on PATH. A newer client first
/// on PATH (Docker 28 in /usr/local/bin here) negotiates the API down to the
/// engine's, so either works; the packaged pair is the predictable one.
pub fn client() -> PathBuf {
    let packaged = Path::new("/usr/bin/docker");
    if packaged.exists() {
        packaged.to_path_buf()
    } else {
        crate::host::which("docker").unwrap_or_else(|| PathBuf::from("docker"))
    }
}

/// Parses an engine list (containers or images) into (id, value of
/// `label`) pairs, skipping objects without the label.
pub fn parse_labelled(body: &str, label: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some((
                o["Id"].as_str()?.to_string(),
                o["Labels"][label].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The suite's objects of one kind (`containers` or `images`) that carry
/// `label`, as (id, label value). Empty at once when no
/// engine answered the probe, so the per-experiment leak check costs nothing
/// on hosts without Docker.
fn list_labelled(kind: &str, label: &str) -> Vec<(String, String)> {
    if !engine_present() {
        return Vec::new();
    }
    // all=1&filters={"label":["<label>"]}, URL-encoded.
    let path = format!("/{kind}/json?all=1&filters=%7B%22label%22%3A%5B%22{label}%22%5D%7D");
    match api("GET", &path) {
        Ok(r) if r.status == 200 => parse_labelled(&r.body, label),
        _ => Vec::new(),
    }
}

/// The suite's containers: (id, tag label). Empty at once when no engine
/// answered the probe, so the per-experiment leak check
/// costs nothing on hosts without Docker.
pub fn suite_containers() -> Vec<(String, String)> {
    list_labelled("containers", LABEL)
}

/// Removes a container (killing it first if it runs), with its volumes.
pub fn remove_container(id: &str) -> Result<(), String> {
    let r = api("DELETE", &format!("/containers/{id}?force=1&v=1"))?;
    match r.status {
        204 | 404 => Ok(()),
        // An earlier removal (a timed-out client, the experiment's own
        // teardown) is still running in a slow engine (a TCG guest): wait
        // for it, bounded, instead of calling the container leaked.
        409 if r.body.contains("already in progress") => wait_gone(id),
        s => Err(format!(
            "removing container {id}: HTTP {s}: {}",
            r.body.trim()
        )),
    }
}

/// Polls until the engine no longer knows the container (at most 60 s).
fn wait_gone(id: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if api("GET", &format!("/containers/{id}/json"))?.status == 404 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    Err(format!(
        "container {id}: its removal was still in progress after 60 s"
    ))
}

/// The `docker` CLI as a tagged command of the scope (an experiment).
pub fn docker(scope: &impl Scope) -> Command {
    scope.cmd(client())
}

fn describe_args(args: &[&str]) -> String {
    format!("docker {}", args.join(" "))
}

/// Container-creating CLI calls that did not come back normally: started
/// and not returned yet, or killed by a signal (the SIGINT/SIGTERM sweep
/// kills the suite's processes). The engine finishes such a request on its
/// own, so a container may appear after the sweep: [`end_of_run`] settles.
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs a container-creating `docker` command, tracking it in [`IN_FLIGHT`].
fn run_creating(cmd: &mut Command) -> anyhow::Result<Ran> {
    use std::sync::atomic::Ordering;
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    if STOPPING.load(Ordering::SeqCst) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        bail!("the run is ending: no new containers");
    }
    let r = run(cmd);
    // Only a call that returned normally is known to be finished.
    if r.as_ref().map_or(true, |ran| ran.signal.is_none()) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
    r
}

fn creating_ok(scope: &impl Scope, args: &[&str]) -> anyhow::Result<String> {
    let r = run_creating(docker(scope).args(args))?;
    if !r.success() {
        bail!(
            "`{}` exited {}: {}",
            describe_args(args),
            r.shell_status(),
            r.stderr.trim()
        );
    }
    Ok(r.stdout)
}

/// Runs `docker ARGS` and insists on exit 0; returns stdout.
pub fn docker_ok(scope: &impl Scope, args: &[&str]) -> anyhow::Result<String> {
    let r = run(docker(scope).args(args))?;
    if !r.success() {
        bail!(
            "`{}` exited {}: {}",
            describe_args(args),
            r.shell_status(),
            r.stderr.trim()
        );
    }
    Ok(r.stdout)
}

/// A container of the suite; removed at the experiment's teardown.
#[derive(Clone, Debug)]
pub struct Container {
    /// The engine's full container id.
    pub id: String,
    /// The run-unique name it was created with (`Ctx::name`); teardown removes it by this name.
    pub name: String,
}

/// The common head of `docker run` / `docker create`: run-unique name,
/// the experiment's tag label, and a teardown that removes the container.
fn labelled(scope: &mut impl Scope, verb: &str, role: &str) -> (Vec<String>, String) {
    let name = scope.name(role);
    let n = name.clone();
    scope.defer("docker rm -f", move || {
        if let Err(e) = remove_container(&n) {
            eprintln!("isocheck: teardown: {e}");
        }
    });
    let args = vec![
        verb.to_string(),
        "--name".into(),
        name.clone(),
        "--label".into(),
        format!("{LABEL}={}", scope.tag()),
    ];
    (args, name)
}

/// `docker run -d OPTS IMAGE CMD…`: a running container.
pub fn run_detached(
    scope: &mut impl Scope,
    opts: &[&str],
    cmd: &[&str],
) -> anyhow::Result<Container> {
    let image = image()?;
    let (mut args, name) = labelled(scope, "run", "ctr");
    args.push("-d".into());
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push(image);
    args.extend(cmd.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = creating_ok(scope, &a)?.trim().to_string();
    if id.is_empty() {
        bail!("`{}` printed no container id", describe_args(&a));
    }
    Ok(Container { id, name })
}

/// `docker run -d -i IMAGE sh`: the seed's interactive shell, kept alive by
/// its open stdin, so the shell is the container's only process.
pub fn run_shell(scope: &mut impl Scope, opts: &[&str]) -> anyhow::Result<Container> {
    let mut o = vec!["-i"];
    o.extend_from_slice(opts);
    run_detached(scope, &o, &["sh"])
}

/// What a foreground `docker run` came to: a container that started (and
/// maybe ended), or the engine's refusal, before or after creating it.
#[derive(Debug)]
pub enum Launch {
    /// The container started; what the client reported.
    Started(Container, Ran),
    /// No container was created (a refused option): the client's status and message.
    NotCreated {
        /// The client's exit status.
        status: i32,
        /// What the client printed.
        message: String,
    },
    /// Created but never started: the engine's own reason (`State.Error`).
    NotStarted(String),
}

/// Whether a container ever started, from its `State`: `None` when it did,
/// else the engine's reason (`State.Error`, or the state itself). A
/// container that never ran has the zero `StartedAt`.
pub fn start_failure(state: &Value) -> Option<String> {
    let started = state["StartedAt"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
    if started {
        return None;
    }
    match state["Error"].as_str() {
        Some(e) if !e.is_empty() => Some(e.to_string()),
        _ => Some(format!("it never started (State: {state})")),
    }
}

/// The engine's inspect document of a container, by id or name; `None`
/// when the engine does not know it.
fn inspect_api(id: &str) -> anyhow::Result<Option<Value>> {
    let r = api("GET", &format!("/containers/{id}/json")).map_err(|e| anyhow!(e))?;
    match r.status {
        200 => Ok(Some(
            serde_json::from_str(&r.body).context("the engine's inspect document")?,
        )),
        404 => Ok(None),
        s => bail!("inspecting container {id}: HTTP {s}: {}", r.body.trim()),
    }
}

/// `docker run OPTS IMAGE CMD…` in the foreground (not removed by docker,
/// so the state can be inspected; the teardown removes it), for a row that
/// expects the engine may refuse it: which of [`Launch`] happened. `role`
/// names the container (`ctx.name(role)`; a step on a parallel thread runs
/// in `ctx.fork()`, which shares the name counter, so any role is unique).
pub fn run_fg_outcome(
    scope: &mut impl Scope,
    role: &str,
    opts: &[&str],
    cmd: &[&str],
) -> anyhow::Result<Launch> {
    let image = image()?;
    let (mut args, name) = labelled(scope, "run", role);
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push(image);
    args.extend(cmd.iter().map(|s| s.to_string()));
    let r = run_creating(docker(scope).args(&args))?;
    // A client killed by a signal (the run's cleanup) tells nothing of the
    // engine's answer: its request may still be creating the container.
    if let Some(sig) = r.signal {
        bail!("`docker run` for {name} was killed by signal {sig}");
    }
    let Some(doc) = inspect_api(&name)? else {
        return Ok(Launch::NotCreated {
            status: r.shell_status(),
            message: r.stderr.trim().to_string(),
        });
    };
    if let Some(why) = start_failure(&doc["State"]) {
        return Ok(Launch::NotStarted(why));
    }
    let id = doc["Id"].as_str().unwrap_or(&name).to_string();
    Ok(Launch::Started(Container { id, name }, r))
}

/// `docker run OPTS IMAGE CMD…` in the foreground, which must start: a
/// container the engine did not create or start is a setup error naming
/// the engine's reason, never an empty output for the row to judge.
pub fn run_fg(
    scope: &mut impl Scope,
    role: &str,
    opts: &[&str],
    cmd: &[&str],
) -> anyhow::Result<(Container, Ran)> {
    match run_fg_outcome(scope, role, opts, cmd)? {
        Launch::Started(c, r) => Ok((c, r)),
        Launch::NotCreated { status, message } => bail!(
            "`docker run {}` created no container (exit {status}): {message}",
            opts.join(" ")
        ),
        Launch::NotStarted(why) => bail!(
            "the container of `docker run {}` did not start: {why}",
            opts.join(" ")
        ),
    }
}

/// `docker create IMAGE CMD…`.
pub fn create(scope: &mut impl Scope, cmd: &[&str]) -> anyhow::Result<Container> {
    let image = image()?;
    let (mut args, name) = labelled(scope, "create", "ctr");
    args.push(image);
    args.extend(cmd.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = creating_ok(scope, &a)?.trim().to_string();
    Ok(Container { id, name })
}

/// `docker exec CONTAINER CMD…`, whatever the command's exit status. An
/// exec that never ran its command (the container is not running, the
/// runtime refused the exec) is a setup error with the engine's reason, so
/// no row reads the empty output of a command that never ran.
pub fn exec(scope: &impl Scope, c: &Container, cmd: &[&str]) -> anyhow::Result<Ran> {
    let r = run(docker(scope).arg("exec").arg(&c.id).args(cmd))?;
    if r.success() {
        return Ok(r);
    }
    if let Some(doc) = inspect_api(&c.id)? {
        if doc["State"]["Running"].as_bool() != Some(true) {
            let why = start_failure(&doc["State"]).unwrap_or_else(|| {
                format!(
                    "it is {} (exit code {})",
                    doc["State"]["Status"], doc["State"]["ExitCode"]
                )
            });
            bail!(
                "docker exec into {}: the container is not running: {why}",
                c.name
            );
        }
    } else {
        bail!("docker exec into {}: the engine does not know it", c.name);
    }
    if exec_never_ran(&r.stderr) {
        bail!(
            "docker exec into {} did not run `{}`: {}",
            c.name,
            cmd.join(" "),
            r.stderr.trim()
        );
    }
    Ok(r)
}

/// The client's own words for an exec whose command never ran (the engine
/// or the runtime refused it), as opposed to the command's stderr.
pub fn exec_never_ran(stderr: &str) -> bool {
    let s = stderr.trim_start();
    s.starts_with("Error response from daemon:") || s.starts_with("OCI runtime exec failed")
}

/// `docker inspect CONTAINER`, the first (only) object.
pub fn inspect(scope: &impl Scope, c: &Container) -> anyhow::Result<Value> {
    let out = docker_ok(scope, &["inspect", &c.id])?;
    let v: Value = serde_json::from_str(&out).context("docker inspect output")?;
    v.get(0)
        .cloned()
        .ok_or_else(|| anyhow!("docker inspect {} returned no object", c.name))
}

/// The container's gateway on `network` (`bridge` for a default `docker
/// run`), from `NetworkSettings.Networks`: API 1.52 drops the top-level
/// `NetworkSettings.Gateway`, the per-network one is there at every version.
pub fn gateway(inspect: &Value, network: &str) -> Option<String> {
    inspect["NetworkSettings"]["Networks"][network]["Gateway"]
        .as_str()
        .filter(|g| !g.is_empty())
        .map(String::from)
}

/// The host pid of the container's init (`State.Pid`).
pub fn init_pid(scope: &impl Scope, c: &Container) -> anyhow::Result<i32> {
    let v = inspect(scope, c)?;
    match v["State"]["Pid"].as_i64() {
        Some(p) if p > 0 => Ok(p as i32),
        _ => bail!(
            "container {} has no running init (State: {})",
            c.name,
            v["State"]
        ),
    }
}

/// Client and server versions as `docker version` reports them.
pub fn versions(scope: &impl Scope) -> anyhow::Result<Value> {
    let out = docker_ok(scope, &["version", "--format", "{{json .}}"])?;
    let v: Value = serde_json::from_str(out.trim()).context("docker version output")?;
    let mut j = serde_json::json!({
        "client_path": client().display().to_string(),
        "client": v["Client"]["Version"],
        "client_api": v["Client"]["ApiVersion"],
        "server": v["Server"]["Version"],
        "server_api": v["Server"]["ApiVersion"],
    });
    // A different client first on PATH (Docker 28 in /usr/local/bin here):
    // record that it negotiates the API down to the engine's.
    if let Some(other) = crate::host::which("docker").filter(|p| *p != client()) {
        let r = run(scope
            .cmd(&other)
            .args(["version", "--format", "{{json .Client}}"]))?;
        let c: Value = serde_json::from_str(r.stdout.trim()).unwrap_or(Value::Null);
        j["path_client"] = serde_json::json!({
            "path": other.display().to_string(),
            "version": c["Version"],
            "api_negotiated": c["ApiVersion"],
            "api_default": c["DefaultAPIVersion"],
            "status": r.shell_status(),
        });
    }
    Ok(j)
}

/// Set when the run ends: no container is created after that.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// End of a run: removes this run's containers and image, and the images of
/// runs that died without removing theirs. `cleanup::sweep_this_run` calls
/// it (at the end of both front ends and on SIGINT/SIGTERM), after the
/// generic sweep. Returns errors.
///
/// On a signal the sweep runs while workers still run: a `docker run` whose
/// client was killed still completes in the engine, and the image import may
/// still be under way. So creating is refused from here on, and when a
/// creating call was in flight the removal repeats until the engine has
/// shown nothing of the run for a while (bounded; a normal end makes one
/// pass). Whatever still escapes carries the run's label and is removed by
/// the next run's sweep of dead runs.
pub fn end_of_run() -> Vec<String> {
    use std::sync::atomic::Ordering;
    let mut errors = Vec::new();
    if !engine_present() {
        return errors;
    }
    STOPPING.store(true, Ordering::SeqCst);
    let in_flight = IN_FLIGHT.load(Ordering::SeqCst) > 0;
    let run = cleanup::run_tag();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut quiet = 0;
    loop {
        errors.clear();
        let containers: Vec<String> = suite_containers()
            .into_iter()
            .filter(|(_, t)| run.owns(t))
            .map(|(id, _)| id)
            .collect();
        for id in &containers {
            if let Err(e) = remove_container(id) {
                errors.push(e);
            }
        }
        let images: Vec<String> = suite_images()
            .into_iter()
            .filter(|(_, r)| r == cleanup::run_id() || !cleanup::run_is_alive(r))
            .map(|(id, _)| id)
            .collect();
        for id in &images {
            match api("DELETE", &format!("/images/{id}?force=1")) {
                Ok(r) if r.status == 200 || r.status == 404 => {}
                Ok(r) => errors.push(format!(
                    "removing image {id}: HTTP {}: {}",
                    r.status,
                    r.body.trim()
                )),
                Err(e) => errors.push(format!("removing image {id}: {e}")),
            }
        }
        if !in_flight {
            break;
        }
        quiet = if containers.is_empty() && images.is_empty() {
            quiet + 1
        } else {
            0
        };
        if quiet >= 10 || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    errors
}

/// Docker containers as a kind of leftover: found by their tag label,
/// removed with their volumes; the run's image goes at the end of the run.
static CONTAINERS: cleanup::LeftoverKind = cleanup::LeftoverKind {
    noun: "docker container",
    list: suite_containers,
    remove: remove_container,
    end_of_run,
};

/// Lets the leak check and the sweeps find and remove the suite's
/// containers and image (cleanup cannot call this module: it sits below it).
pub fn register_leftovers() {
    cleanup::register_kind(&CONTAINERS);
}

/// The containers of one experiment's tag (for assertions on listings).
pub fn containers_of(tag: &Tag) -> Vec<String> {
    suite_containers()
        .into_iter()
        .filter(|(_, t)| t == tag.as_str())
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_refused_socket_says_how_to_get_access() {
        let sock = Path::new("/var/run/docker.sock");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            connect_error(sock, &denied),
            "permission denied on /var/run/docker.sock: run with sudo or join the docker group"
        );
        let absent = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(connect_error(sock, &absent).starts_with("connecting to the Docker engine"));
    }
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n[]\n".as_slice(), 200, "[]\n")]
    #[case(b"HTTP/1.1 204 No Content\r\n\r\n".as_slice(), 204, "")]
    #[case(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".as_slice(), 200, "abcde")]
    #[case(b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"no such container\"}".as_slice(), 404, "{\"message\":\"no such container\"}")]
    fn parses_http_responses(#[case] raw: &[u8], #[case] status: u16, #[case] body: &str) {
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, status);
        assert_eq!(r.body, body);
    }

    #[rstest]
    #[case(b"garbage".as_slice())]
    #[case(b"HTTP/1.0 abc\r\n\r\n".as_slice())]
    fn rejects_bad_responses(#[case] raw: &[u8]) {
        assert!(parse_response(raw).is_err());
    }

    #[rstest]
    #[case(r#"[{"Id":"abc","Labels":{"isocheck.tag":"isoc-1-2"}},{"Id":"def","Labels":{}}]"#, vec![("abc", "isoc-1-2")])]
    #[case("[]", vec![])]
    #[case("not json", vec![])]
    fn lists_labelled_containers(#[case] body: &str, #[case] want: Vec<(&str, &str)>) {
        let got = parse_labelled(body, LABEL);
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[rstest]
    #[case(r#"[{"Id":"sha256:a","Labels":{"isocheck.run":"1f2e"}},{"Id":"sha256:b","Labels":null}]"#, vec![("sha256:a", "1f2e")])]
    #[case("[]", vec![])]
    fn lists_labelled_images(#[case] body: &str, #[case] want: Vec<(&str, &str)>) {
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(parse_labelled(body, IMAGE_LABEL), want);
    }

    #[rstest]
    #[case(
        r#"{"Running":true,"StartedAt":"2026-12-05T06:13:02.1Z","Error":""}"#,
        None
    )]
    #[case(
        r#"{"Running":false,"StartedAt":"2026-12-05T06:13:02.1Z","ExitCode":0}"#,
        None
    )]
    #[case(r#"{"Status":"created","StartedAt":"0001-01-01T00:00:00Z","Error":"failed to create shim task: OCI runtime create failed: /bin/false did not terminate successfully"}"#, Some("failed to create shim task"))]
    #[case(
        r#"{"Status":"created","StartedAt":"0001-01-01T00:00:00Z","Error":""}"#,
        Some("it never started")
    )]
    fn tells_a_container_that_never_started(#[case] state: &str, #[case] want: Option<&str>) {
        let got = start_failure(&serde_json::from_str(state).unwrap());
        match want {
            None => assert_eq!(got, None),
            Some(w) => assert!(got.as_deref().is_some_and(|g| g.starts_with(w)), "{got:?}"),
        }
    }

    #[rstest]
    #[case("Error response from daemon: Container abc is not running\n", true)]
    #[case(
        "OCI runtime exec failed: exec failed: unable to start container process",
        true
    )]
    #[case("ip: RTNETLINK answers: Operation not permitted\n", false)]
    #[case("", false)]
    fn tells_an_exec_that_never_ran(#[case] stderr: &str, #[case] want: bool) {
        assert_eq!(exec_never_ran(stderr), want);
    }

    /// `NetworkSettings` recorded from docker.io 20.10.24 (API 1.41, both
    /// gateways) and as API 1.52 gives it (no top-level `Gateway`).
    const NET_1_41: &str = r#"{"NetworkSettings":{"Bridge":"","SandboxKey":"/var/run/docker/netns/7a074d8e5281","Gateway":"172.17.0.1","IPAddress":"172.17.0.2","Networks":{"bridge":{"NetworkID":"2021685d9f5a","Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16}}}}"#;
    const NET_1_52: &str = r#"{"NetworkSettings":{"SandboxKey":"/var/run/docker/netns/7a074d8e5281","Networks":{"bridge":{"NetworkID":"2021685d9f5a","Gateway":"172.17.0.1","IPAddress":"172.17.0.2"}}}}"#;
    const NET_NONE: &str =
        r#"{"NetworkSettings":{"Gateway":"","Networks":{"none":{"Gateway":"","IPAddress":""}}}}"#;

    #[rstest]
    #[case(NET_1_41, "bridge", Some("172.17.0.1"))]
    #[case(NET_1_52, "bridge", Some("172.17.0.1"))]
    #[case(NET_NONE, "bridge", None)]
    #[case(NET_NONE, "none", None)]
    fn the_gateway_comes_from_networks(
        #[case] doc: &str,
        #[case] net: &str,
        #[case] want: Option<&str>,
    ) {
        let v: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(gateway(&v, net).as_deref(), want);
    }

    fn elf(interp: bool) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 2 * 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        let t: u32 = if interp { 3 } else { 1 };
        b[120..124].copy_from_slice(&t.to_le_bytes());
        b
    }

    #[rstest]
    #[case(elf(true), Ok(true))]
    #[case(elf(false), Ok(false))]
    #[case(b"#!/bin/sh\n".to_vec(), Err("not an ELF file".to_string()))]
    fn tells_static_from_dynamic(#[case] bytes: Vec<u8>, #[case] want: Result<bool, String>) {
        assert_eq!(elf_has_interp(&bytes), want);
    }
}
