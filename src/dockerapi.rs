//! The Docker engine's HTTP API on its unix socket: the probe of the host's
//! engine and single requests. Below `host` (which reports the probe) and
//! `docker` (which uses the requests), so that probing does not depend on
//! the mechanism.

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The newest API version this code knows: what it reads (container
/// lists, inspect's `Networks`, `State`) is the same up to it. Docker 29
/// refuses clients below 1.44, so a fixed old version is not an option.
pub const API_MAX: (u32, u32) = (1, 52);
/// The oldest engine API the suite was measured against (Docker 20.10).
pub const API_MIN: (u32, u32) = (1, 41);
/// 5 s; 60 s in ci/kernel-run.sh's TCG guest, where the engine runs 15-30x
/// slower and a container's removal alone can take longer than 5 s.
fn api_timeout() -> Duration {
    Duration::from_secs(if crate::process::in_qemu_guest() {
        60
    } else {
        5
    })
}

/// The engine's unix socket, from `DOCKER_HOST` or the default.
pub fn socket_path() -> Result<PathBuf, String> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h
            .strip_prefix("unix://")
            .map(PathBuf::from)
            .ok_or_else(|| format!("DOCKER_HOST={h}: only unix:// sockets are supported")),
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

/// A parsed HTTP response: status code, headers and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl Response {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an HTTP/1.x response (the engine answers an HTTP/1.0 request
/// without chunking, but a proxy in front of it might chunk anyway).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("HTTP response without a header end")?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.push_str(chunk);
        s = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}

const DENIED: &str = "permission denied on ";

/// A refused socket means an engine runs that this user may not use: say
/// how to get access, not that no engine answers.
pub fn connect_error(sock: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{DENIED}{}: run with sudo or join the docker group",
            sock.display()
        )
    } else {
        format!("connecting to the Docker engine at {}: {e}", sock.display())
    }
}

/// One request to the engine's socket, `path` sent as given (no version),
/// bounded by a timeout.
fn request(method: &str, path: &str) -> Result<Response, String> {
    let sock = socket_path()?;
    let mut s = UnixStream::connect(&sock).map_err(|e| connect_error(&sock, &e))?;
    let _ = s.set_read_timeout(Some(api_timeout()));
    let _ = s.set_write_timeout(Some(api_timeout()));
    let req = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", sock.display()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading from {}: {e}", sock.display()))?;
    parse_response(&raw)
}

/// One request to the engine's API at the negotiated version.
pub fn api(method: &str, path: &str) -> Result<Response, String> {
    let v = api_version()?;
    request(method, &format!("/v{v}{path}"))
}

/// `1.41` -> (1, 41).
pub fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The version both sides know: the engine's own (`/_ping`'s `API-Version`
/// header, or `/version`'s `ApiVersion`) capped at [`API_MAX`]; an engine
/// older than [`API_MIN`], or one whose minimum is above what this code
/// knows, is refused with both numbers.
pub fn negotiate(server: &str, server_min: Option<&str>) -> Result<String, String> {
    let srv = parse_api_version(server)
        .ok_or_else(|| format!("the engine announced API version {server:?}"))?;
    let ours = srv.min(API_MAX);
    if ours < API_MIN {
        return Err(format!(
            "the engine speaks API {server}, older than {}.{} (Docker 20.10), the oldest this suite knows",
            API_MIN.0, API_MIN.1
        ));
    }
    if let Some(min) = server_min.and_then(parse_api_version) {
        if min > ours {
            return Err(format!(
                "the engine requires API >= {}.{}; this suite knows up to {}.{}",
                min.0, min.1, API_MAX.0, API_MAX.1
            ));
        }
    }
    Ok(format!("{}.{}", ours.0, ours.1))
}

/// The engine's version from an unversioned `/_ping` (header) or, for an
/// engine without the header, `/version` (body): (version, minimum).
fn server_api() -> Result<(String, Option<String>), String> {
    let ping = request("GET", "/_ping")?;
    if let Some(v) = ping.header("api-version") {
        return Ok((v.to_string(), None));
    }
    let r = request("GET", "/version")?;
    let v: Value = serde_json::from_str(&r.body)
        .map_err(|e| format!("engine /version (HTTP {}): {e}", r.status))?;
    let api = v["ApiVersion"]
        .as_str()
        .ok_or_else(|| format!("engine /version names no ApiVersion: {}", r.body.trim()))?;
    Ok((
        api.to_string(),
        v["MinAPIVersion"].as_str().map(String::from),
    ))
}

static NEGOTIATED: OnceLock<Result<String, String>> = OnceLock::new();

/// The negotiated API version (once per process).
pub fn api_version() -> Result<String, String> {
    NEGOTIATED
        .get_or_init(|| server_api().and_then(|(v, min)| negotiate(&v, min.as_deref())))
        .clone()
}

/// The pid of the process serving the engine's socket (SO_PEERCRED), as
/// this pid namespace numbers it: the engine whose mount namespace the
/// paths of its inspect documents (`SandboxKey`) live in.
pub fn engine_pid() -> Result<i32, String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let sock = socket_path()?;
    let s = UnixStream::connect(&sock).map_err(|e| connect_error(&sock, &e))?;
    let cred = getsockopt(&s, PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED on {}: {e}", sock.display()))?;
    match cred.pid() {
        p if p > 0 => Ok(p),
        _ => Err(format!(
            "the engine at {} is outside this pid namespace",
            sock.display()
        )),
    }
}

/// A path as the engine sees it (an inspect field such as `SandboxKey`),
/// reached through `/proc/<engine pid>/root`: the engine may run in a mount
/// namespace of its own (dind, rootless, a release root).
pub fn engine_path(path: &str) -> Result<PathBuf, String> {
    Ok(through_root(engine_pid()?, path))
}

/// `path` as process `pid` sees it: under its `/proc/<pid>/root`.
pub fn through_root(pid: i32, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))
}

static ENGINE: OnceLock<Result<String, String>> = OnceLock::new();

fn engine() -> &'static Result<String, String> {
    ENGINE.get_or_init(|| {
        let r = request("GET", "/version").map_err(|e| {
            if e.starts_with(DENIED) {
                return e;
            }
            if crate::process::in_qemu_guest() {
                return format!(
                    "no Docker engine answers in the guest ({e}): its init starts the host's \
                     dockerd when the host has docker.io (`ci/install-host-deps.sh --docker` \
                     on the host); the console shows dockerd's log when it failed"
                );
            }
            format!(
                "no Docker engine answers ({e}): start one with `ci/docker-engine.sh start` \
                 (install it with `ci/install-host-deps.sh --docker`)"
            )
        })?;
        if r.status != 200 {
            return Err(format!(
                "the Docker engine answered /version with HTTP {}: {}",
                r.status,
                r.body.trim()
            ));
        }
        let v: Value =
            serde_json::from_str(&r.body).map_err(|e| format!("engine /version: {e}"))?;
        let version = v["Version"].as_str().unwrap_or("?");
        let used = api_version().map_err(|e| format!("Docker engine {version}: {e}"))?;
        Ok(format!(
            "{version} (API {}, used {used})",
            v["ApiVersion"].as_str().unwrap_or("?"),
        ))
    })
}

/// Whether an engine answered (probed once).
pub fn engine_present() -> bool {
    engine().is_ok()
}

/// (server version, reason when unusable). The probe is bounded by the API
/// timeout and runs once per process.
pub fn probe_engine() -> (Option<String>, Option<String>) {
    match engine() {
        Ok(v) => (Some(v.clone()), None),
        Err(e) => (None, Some(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Recorded from Debian 12's docker.io 20.10.24 on this host.
    const PING_20_10: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\nDocker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK";
    /// Docker 29's shape: a newer API than this code knows, and a minimum.
    const PING_29: &[u8] = b"HTTP/1.1 200 OK\r\nAPI-Version: 1.52\r\nDocker-Experimental: false\r\nServer: Docker/29.1.0 (linux)\r\n\r\nOK";
    const VERSION_20_10: &str =
        r#"{"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux"}"#;

    #[rstest]
    #[case(PING_20_10, Some("1.41"))]
    #[case(PING_29, Some("1.52"))]
    #[case(b"HTTP/1.0 200 OK\r\n\r\nOK".as_slice(), None)]
    fn reads_the_engines_api_header_in_any_case(#[case] raw: &[u8], #[case] want: Option<&str>) {
        assert_eq!(parse_response(raw).unwrap().header("API-Version"), want);
    }

    #[rstest]
    #[case::docker_20_10("1.41", Some("1.12"), Ok("1.41"))]
    #[case::docker_28("1.51", Some("1.24"), Ok("1.51"))]
    #[case::docker_29("1.52", Some("1.44"), Ok("1.52"))]
    #[case::newer_than_we_know("1.60", Some("1.44"), Ok("1.52"))]
    #[case::minimum_above_ours("1.70", Some("1.60"), Err("requires API >= 1.60"))]
    #[case::too_old("1.40", None, Err("older than 1.41"))]
    #[case::garbage("x", None, Err("announced API version"))]
    fn negotiates_the_highest_version_both_know(
        #[case] server: &str,
        #[case] min: Option<&str>,
        #[case] want: Result<&str, &str>,
    ) {
        match (negotiate(server, min), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w),
            (Err(got), Err(w)) => assert!(got.contains(w), "{got}"),
            (got, w) => panic!("{server}/{min:?}: got {got:?}, want {w:?}"),
        }
    }

    #[test]
    fn a_recorded_version_document_negotiates_to_its_own_api() {
        let v: Value = serde_json::from_str(VERSION_20_10).unwrap();
        let got = negotiate(
            v["ApiVersion"].as_str().unwrap(),
            v["MinAPIVersion"].as_str(),
        );
        assert_eq!(got.as_deref(), Ok("1.41"));
    }

    #[rstest]
    #[case(
        42,
        "/var/run/docker/netns/7a074d8e5281",
        "/proc/42/root/var/run/docker/netns/7a074d8e5281"
    )]
    #[case(7, "relative/x", "/proc/7/root/relative/x")]
    fn engine_paths_go_through_its_root(#[case] pid: i32, #[case] p: &str, #[case] want: &str) {
        assert_eq!(through_root(pid, p), PathBuf::from(want));
    }

    /// The host engine (when one answers) is found by its socket's peer.
    #[test]
    fn the_engine_pid_is_the_sockets_peer() {
        let Ok(pid) = engine_pid() else { return };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(
            comm.trim().starts_with("dockerd") || comm.trim().starts_with("docker"),
            "{comm}"
        );
    }

    #[rstest]
    #[case("1.41", Some((1, 41)))]
    #[case(" 1.5 ", Some((1, 5)))]
    #[case("1", None)]
    fn parses_api_versions(#[case] v: &str, #[case] want: Option<(u32, u32)>) {
        assert_eq!(parse_api_version(v), want);
    }
}
