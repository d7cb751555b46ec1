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

/// Each section's module, once: the section a module registers under is
/// the one its ids name (`Section::of_id`; the tests below hold both ways).
fn sections() -> [(Section, &'static [Experiment]); 8] {
    [
        (Section::Pid, pid::EXPERIMENTS),
        (Section::Net, net::EXPERIMENTS),
        (Section::Mnt, mnt::EXPERIMENTS),
        (Section::OtherNs, other_ns::EXPERIMENTS),
        (Section::Cgroup, cgroup::EXPERIMENTS),
        (Section::Seccomp, seccomp::EXPERIMENTS),
        (Section::Docker, docker::EXPERIMENTS),
        (Section::Escape, escape::EXPERIMENTS),
    ]
}

/// Every experiment, in catalogue order.
pub fn all() -> Vec<&'static Experiment> {
    sections().into_iter().flat_map(|(_, e)| e).collect()
}

/// Runs `isocheck helper ARGS…` and parses its JSON reply; a helper that
/// failed breaks the row with its status and message.
pub(crate) fn helper_reply<T: serde::de::DeserializeOwned>(
    ctx: &crate::experiment::Ctx,
    args: &[&str],
) -> Result<T, crate::experiment::Problem> {
    let r = crate::process::run(ctx.helper().args(args))?;
    if !r.success() {
        crate::broken!(
            "helper {}: status {}: {}",
            args[0],
            r.shell_status(),
            r.stderr.trim()
        );
    }
    Ok(serde_json::from_str(r.stdout.trim())?)
}

/// Non-comment lines of a fixture list.
fn id_lines(text: &'static str) -> Vec<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Catalogue ids that no experiment implements yet (fixtures/catalogue-pending.txt):
/// `list` shows them as "not built yet"; they never reach a report.
pub fn pending() -> Vec<&'static str> {
    id_lines(include_str!("../../fixtures/catalogue-pending.txt"))
}

/// Every catalogue id in catalogue order (fixtures/catalogue-ids.txt), built or pending.
pub fn catalogue_ids() -> Vec<&'static str> {
    id_lines(include_str!("../../fixtures/catalogue-ids.txt"))
}

/// One section's rows in catalogue order, for output grouped by section (`list`, the cargo test harness).
pub fn of_section(s: Section) -> Vec<&'static Experiment> {
    all().into_iter().filter(|e| e.section == s).collect()
}

/// The experiment with exactly this id; None for an id the catalogue does not have.
pub fn find(id: &str) -> Option<&'static Experiment> {
    all().into_iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id of a module maps to that module's section, and every
    /// section is one module: the id prefix alone decides the section.
    #[test]
    fn each_module_holds_exactly_its_sections_ids() {
        let modules = sections();
        let listed: Vec<Section> = modules.iter().map(|(s, _)| *s).collect();
        assert_eq!(listed, Section::ALL, "one module per section, in order");
        for (sec, exps) in modules {
            assert!(!exps.is_empty(), "section {} has no experiment", sec.key());
            for e in exps {
                assert_eq!(
                    Section::of_id(e.id),
                    Some(sec),
                    "{} is filed in {:?}",
                    e.id,
                    sec
                );
                assert_eq!(e.section, sec, "{}", e.id);
            }
        }
    }

    /// Every prefix a section claims maps back to it, and nothing else does.
    #[test]
    fn id_prefixes_map_back_to_their_section() {
        for sec in Section::ALL {
            for p in sec.id_prefixes() {
                assert_eq!(Section::of_id(&format!("{p}.x")), Some(*sec));
                assert_eq!(Section::of_id(p), None, "a bare prefix is no id");
            }
        }
        for id in ["pidx.a", "pi.a", ".pid", "", "test.x", "net"] {
            assert_eq!(Section::of_id(id), None, "{id:?}");
        }
    }

    /// The net section's fixture wraps each of its bodies, no other's.
    #[test]
    fn only_the_net_section_runs_in_the_host_guard() {
        for e in all() {
            let guarded = e.fixture.is_some_and(|f| std::ptr::eq(f, &net::HOST_GUARD));
            assert_eq!(guarded, e.section == Section::Net, "{}", e.id);
        }
    }
}
