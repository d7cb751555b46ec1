//! The registry: every experiment of the catalogue, one module per seed
//! section. Both front ends (`isocheck run` and `cargo test`) read it.

use crate::experiment::{Experiment, Section};

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
