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

/// The engine's API version this code speaks (Docker 20.10); newer engines
/// accept older versions.
const API: &str = "v1.41";
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

/// A parsed HTTP response: status code and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: String,
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
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Response { status, body })
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

/// One request to the engine's API, bounded by a timeout.
pub fn api(method: &str, path: &str) -> Result<Response, String> {
    let sock = socket_path()?;
    let mut s = UnixStream::connect(&sock).map_err(|e| connect_error(&sock, &e))?;
    let _ = s.set_read_timeout(Some(api_timeout()));
    let _ = s.set_write_timeout(Some(api_timeout()));
    let req = format!("{method} /{API}{path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", sock.display()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading from {}: {e}", sock.display()))?;
    parse_response(&raw)
}

static ENGINE: OnceLock<Result<String, String>> = OnceLock::new();

fn engine() -> &'static Result<String, String> {
    ENGINE.get_or_init(|| {
        let r = api("GET", "/version").map_err(|e| {
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
        Ok(format!(
            "{} (API {})",
            v["Version"].as_str().unwrap_or("?"),
            v["ApiVersion"].as_str().unwrap_or("?")
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
