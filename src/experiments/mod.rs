//! The registry: every experiment of the catalogue, one module per seed
//! section. Both front ends (`isocheck run` and `cargo test`) read it.

use crate::experiment::{Experiment, Section};
use crate::helper::HelperOp;

pub mod cgroup;
pub mod docker;
pub mod escape;
pub mod mnt;
pub mod net;
pub mod other_ns;
pub mod pid;
pub mod seccomp;

fn sections() -> [&'static [Experiment]; 8] {
    [
        pid::EXPERIMENTS,
        net::EXPERIMENTS,
        mnt::EXPERIMENTS,
        other_ns::EXPERIMENTS,
        cgroup::EXPERIMENTS,
        seccomp::EXPERIMENTS,
        docker::EXPERIMENTS,
        escape::EXPERIMENTS,
    ]
}

/// Every experiment, in catalogue order.
pub fn all() -> Vec<&'static Experiment> {
    sections().into_iter().flatten().collect()
}

pub fn of_section(s: Section) -> Vec<&'static Experiment> {
    all().into_iter().filter(|e| e.section == s).collect()
}

pub fn find(id: &str) -> Option<&'static Experiment> {
    all().into_iter().find(|e| e.id == id)
}

/// Helper operations the sections add to `isocheck helper`.
pub fn helper_ops() -> Vec<(&'static str, HelperOp)> {
    [
        pid::HELPER_OPS,
        net::HELPER_OPS,
        mnt::HELPER_OPS,
        other_ns::HELPER_OPS,
        cgroup::HELPER_OPS,
        seccomp::HELPER_OPS,
        docker::HELPER_OPS,
        escape::HELPER_OPS,
    ]
    .into_iter()
    .flatten()
    .copied()
    .collect()
}
