//! The suite's image: a busybox rootfs imported with `docker import`
//! (nothing is pulled), built once per run and found again by its label.

use super::{client, list_labelled, IMAGE_LABEL, IMAGE_REPO, IN_FLIGHT, STOPPING};
use crate::cleanup;
use anyhow::{anyhow, bail, Context};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

/// Whether an ELF file asks for a program interpreter (is dynamically
/// linked). A dynamic busybox cannot run in an image holding only itself.
pub fn elf_has_interp(b: &[u8]) -> Result<bool, String> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16at(0x36), u16at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let t = b
            .get(o..o + 4)
            .ok_or("program header table runs past the end of the file")?;
        if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// FNV-1a, enough to tell two busybox binaries apart in an image tag.
pub fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100000001b3)
    })
}

static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();

/// The suite's image, built on first use in this run. Parallel experiments
/// block on the same `OnceLock` initialiser, so it is built once.
pub fn image() -> anyhow::Result<String> {
    use std::sync::atomic::Ordering;
    IMAGE
        .get_or_init(|| {
            // An import under way when the run ends still lands in the
            // engine: count it like a creating call (see `end_of_run`).
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            if STOPPING.load(Ordering::SeqCst) {
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                return Err("the run is ending: no image is built".into());
            }
            let r = build_image().map_err(|e| format!("{e:#}"));
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            r
        })
        .clone()
        .map_err(|e| anyhow!("building the busybox image: {e}"))
}

fn build_image() -> anyhow::Result<String> {
    let bb = crate::host::which("busybox")
        .ok_or_else(|| anyhow!("busybox not found: install busybox-static"))?;
    let bytes = std::fs::read(&bb).with_context(|| format!("reading {}", bb.display()))?;
    if elf_has_interp(&bytes).map_err(|e| anyhow!("{}: {e}", bb.display()))? {
        bail!(
            "{} is dynamically linked: install busybox-static",
            bb.display()
        );
    }
    let name = format!(
        "{IMAGE_REPO}:{:012x}-{}",
        fnv1a64(&bytes) & 0xffff_ffff_ffff,
        cleanup::run_id()
    );
    // Staged under the run's tag, so a killed run's sweep finds it.
    let stage = cleanup::scratch_root().join(format!("{}image", cleanup::run_tag()));
    let root = stage.join("rootfs");
    let _ = std::fs::remove_dir_all(&stage);
    let r = stage_and_import(&bb, &bytes, &root, &name);
    let _ = std::fs::remove_dir_all(&stage);
    r.map(|()| name)
}

fn stage_and_import(host_bb: &Path, busybox: &[u8], root: &Path, name: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(root.join("tmp"))?;
    let target = bin.join("busybox");
    std::fs::write(&target, busybox)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
    // The applet list from the host's busybox (the same bytes), never by
    // exec'ing the copy just written: a fork on another thread may still
    // hold its write descriptor (until that child's exec), and exec then
    // fails with ETXTBSY ("Text file busy").
    let list = crate::process::run_ok(crate::process::command(host_bb).arg("--list"))?;
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    let mut tar = crate::process::command("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tar")?;
    let tar_out = tar.stdout.take().ok_or_else(|| anyhow!("tar stdout"))?;
    let imp = crate::process::command(client())
        .args(["import", "-c", "ENV PATH=/bin", "-c"])
        .arg(format!("LABEL {IMAGE_LABEL}={}", cleanup::run_id()))
        .args(["-", name])
        .stdin(tar_out)
        .output()
        .context("starting docker import")?;
    let tar_status = tar.wait()?;
    if !tar_status.success() {
        bail!("tar of the rootfs failed: {tar_status}");
    }
    if !imp.status.success() {
        bail!(
            "docker import {name} failed: {}",
            String::from_utf8_lossy(&imp.stderr).trim()
        );
    }
    Ok(())
}

/// The suite's images (tagged or not): (id, run id), by their label.
pub fn suite_images() -> Vec<(String, String)> {
    list_labelled("images", IMAGE_LABEL)
}
