//! esc.docker-device-cgroup: CAP_MKNOD lets a default container make any
//! device node, and the device cgroup (v1 `devices`, v2's eBPF filter) is
//! what keeps it from opening one. The device is a suite loop device over
//! a suite image file, so the only bytes a broken filter exposes are ours.

use crate::docker as dk;
use crate::experiment::{Ctx, Outcome, Problem, Variant};
use crate::loopdev::{self, LOOP_MAJOR};
use crate::{broken, check, check_eq};
use std::path::Path;

/// The first bytes of the suite image; the container prints what it read.
const MAGIC: &str = "ISOCHECK-DEVICE-CGROUP-IMAGE";

/// Writes the image: the magic, then zeros to 64 KiB (a loop device
/// wants whole 512-byte sectors).
fn write_image(p: &Path) -> std::io::Result<()> {
    let mut b = MAGIC.as_bytes().to_vec();
    b.resize(64 << 10, 0);
    std::fs::write(p, b)
}

pub(super) fn docker_device_cgroup(ctx: &mut Ctx, v: Variant) -> Outcome {
    if !Path::new("/dev/loop-control").exists() {
        return Err(Problem::Unmet(
            "no /dev/loop-control: load the loop module (modprobe loop; CONFIG_BLK_DEV_LOOP)"
                .into(),
        ));
    }
    let img = ctx.scratch()?.join("device-cgroup.img");
    write_image(&img)?;
    let lo = loopdev::attach(&img)?;
    let dev = lo.dev.display().to_string();
    ctx.defer("detach the loop device", move || {
        if let Err(e) = loopdev::detach(&dev) {
            eprintln!("isocheck: teardown: {e}");
        }
    });
    let rule = format!("b {LOOP_MAJOR}:{} r", lo.minor);
    let mut opts = vec!["--network", "none"];
    if !v.isolated() {
        opts.extend(["--device-cgroup-rule", &rule]);
    }
    let script = format!(
        "mknod /tmp/blk b {LOOP_MAJOR} {}; echo mknod=$?; head -c {} /tmp/blk; s=$?; echo; echo read=$s",
        lo.minor,
        MAGIC.len()
    );
    let (_c, r) = dk::run_fg(ctx, "dev", &opts, &["sh", "-c", &script])?;
    let field = |k: &str| -> Option<i32> {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|s| s.trim().parse().ok())
    };
    let (Some(mknod), Some(read)) = (field("mknod="), field("read=")) else {
        broken!(
            "the probe printed no statuses: {} {}",
            r.stdout.trim(),
            r.stderr.trim()
        );
    };
    let got_image = r.stdout.contains(MAGIC);
    ctx.measure("device", format!("{LOOP_MAJOR}:{}", lo.minor));
    ctx.observe("mknod_status", mknod);
    ctx.observe("read_status", read);
    ctx.observe("read_stderr", r.stderr.trim());
    ctx.observe("read_the_image", got_image);
    check!(
        !got_image && read != 0 && r.stderr.contains("Operation not permitted"),
        "opening the suite's loop device inside: status {read}, image read {got_image}, {:?}",
        r.stderr.trim()
    );
    check_eq!(mknod, 0, "mknod of the loop device's node (CAP_MKNOD)");
    Ok(())
}
