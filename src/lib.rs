//! isocheck: executable checks of Linux isolation (namespaces, cgroups,
//! seccomp) and of how Docker uses them. See README.md.

// Issue 12: every public item says why it exists; keep it so.
#![warn(missing_docs)]

pub mod apparmor;
pub mod cgroups;
pub mod cleanup;
pub mod coverage;
pub mod docker;
pub mod dockerapi;
pub mod enginestack;
pub mod experiment;
pub mod experiments;
pub mod formats;
pub mod helper;
pub mod host;
pub mod kconfig;
#[cfg(test)]
mod layers;
pub mod loopdev;
pub mod namespaces;
pub mod needs;
pub mod netns;
pub mod owner;
pub mod process;
pub mod report;
pub mod runner;
pub mod scope;
pub mod seccomp;
pub mod session;
pub mod testmain;
pub mod tools;
