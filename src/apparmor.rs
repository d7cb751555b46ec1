//! Ubuntu's AppArmor restriction of unprivileged user namespaces
//! (`kernel.apparmor_restrict_unprivileged_userns=1`, the default from
//! 23.10/24.04). Root on the host is not affected, so the host probe creates
//! user namespaces fine; a process without CAP_SYS_ADMIN, such as a
//! container's shell running `unshare -U true`, is. A row whose assertion
//! needs that then has an unmet need, not a failed kernel behaviour.

/// The sysctl as a file.
pub const SYSCTL: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// Whether the sysctl's text says the restriction is on (a missing file: a
/// kernel without the knob, no restriction).
pub fn restricted(sysctl_text: Option<&str>) -> bool {
    sysctl_text.is_some_and(|t| t.trim() == "1")
}

/// An AppArmor label as `/proc/PID/attr/current` shows it (`docker-default
/// (enforce)`, `unconfined`); None without AppArmor (empty or unreadable).
pub fn profile(attr_current: &str) -> Option<String> {
    let p = attr_current.trim_end_matches(['\n', '\0']).trim();
    (!p.is_empty()).then(|| p.to_string())
}

/// The ignore reason for a row whose unprivileged `unshare -U` failed, when
/// the restriction explains it; None when it does not (then it is a finding).
pub fn userns_unmet(sysctl_text: Option<&str>, profile: Option<&str>) -> Option<String> {
    if !restricted(sysctl_text) {
        return None;
    }
    let within = profile.map_or_else(String::new, |p| {
        format!(" (AppArmor profile in force: {p})")
    });
    Some(format!(
        "kernel.apparmor_restrict_unprivileged_userns=1: AppArmor denies user namespaces to \
         processes without CAP_SYS_ADMIN{within}, so `unshare -U true` in the container cannot \
         show what seccomp allows; to run this row: sudo sysctl -w \
         kernel.apparmor_restrict_unprivileged_userns=0 (restore it afterwards)"
    ))
}

/// The live host's sysctl text, if the knob exists.
pub fn sysctl_text() -> Option<String> {
    std::fs::read_to_string(SYSCTL).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restriction_is_read_from_recorded_sysctl_values() {
        // Ubuntu 24.04 default, after `sysctl -w …=0`, and Debian (no knob).
        assert!(restricted(Some("1\n")));
        assert!(!restricted(Some("0\n")));
        assert!(!restricted(None));
        assert!(!restricted(Some("")));
    }

    #[test]
    fn profiles_are_read_as_procfs_shows_them() {
        assert_eq!(
            profile("docker-default (enforce)\n").as_deref(),
            Some("docker-default (enforce)")
        );
        assert_eq!(profile("unconfined\n").as_deref(), Some("unconfined"));
        assert_eq!(profile(""), None);
    }

    #[test]
    fn the_reason_names_the_sysctl_only_when_it_is_on() {
        let why = userns_unmet(Some("1\n"), Some("docker-default (enforce)")).unwrap();
        assert!(why.starts_with("kernel.apparmor_restrict_unprivileged_userns=1"));
        assert!(why.contains("docker-default (enforce)"));
        assert_eq!(
            userns_unmet(Some("0\n"), Some("docker-default (enforce)")),
            None
        );
        assert_eq!(userns_unmet(None, None), None);
    }
}
