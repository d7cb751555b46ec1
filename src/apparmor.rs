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

/// Whether the kernel enforces AppArmor, as the text of
/// `/sys/module/apparmor/parameters/enabled` says (`Y`; absent: no AppArmor).
pub fn kernel_enabled(param_text: Option<&str>) -> bool {
    param_text.is_some_and(|t| t.trim() == "Y")
}

/// The file that says whether the kernel enforces AppArmor.
pub const ENABLED_PARAM: &str = "/sys/module/apparmor/parameters/enabled";

/// The ignore reason for every Docker row when the kernel enforces AppArmor
/// and `apparmor_parser` is missing: dockerd then refuses every container
/// ("AppArmor enabled on system but the docker-default profile could not be
/// loaded"), so no row could start one; None when containers can start.
pub fn engine_unmet(param_text: Option<&str>, parser_found: bool) -> Option<String> {
    (kernel_enabled(param_text) && !parser_found).then(|| {
        "the kernel enforces AppArmor but apparmor_parser is missing, so dockerd cannot load \
         its docker-default profile and refuses every container: install the apparmor package \
         (ci/install-host-deps.sh --qemu puts it in the guest's tools image)"
            .to_string()
    })
}

/// The ignore reason when the container's own AppArmor profile, not
/// seccomp, refused `unshare -U`: AppArmor's user-namespace mediation
/// answers EACCES ("Permission denied"; seccomp's refusal is EPERM). Seen
/// with sid's apparmor 5 and Docker 28's docker-default on a 6.12 kernel.
pub fn profile_denies_userns(profile: Option<&str>, stderr: &str) -> Option<String> {
    let p = profile.filter(|p| !p.starts_with("unconfined"))?;
    stderr.contains("Permission denied").then(|| {
        format!(
            "the container's AppArmor profile ({p}) denies creating a user namespace (EACCES, \
             AppArmor's userns mediation), so `unshare -U true` cannot show what seccomp allows; \
             Seccomp: 0 was seen. To run this row: an engine whose profile allows userns, or a \
             kernel without AppArmor"
        )
    })
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

    #[rstest::rstest]
    #[case::debian_guest_without_parser(Some("Y\n"), false, true)]
    #[case::debian_guest_with_parser(Some("Y\n"), true, false)]
    #[case::kernel_without_apparmor(None, false, false)]
    #[case::apparmor_disabled_at_boot(Some("N\n"), false, false)]
    fn docker_rows_wait_for_apparmor_parser_only_where_the_kernel_enforces_it(
        #[case] param: Option<&str>,
        #[case] parser: bool,
        #[case] unmet: bool,
    ) {
        let why = engine_unmet(param, parser);
        assert_eq!(why.is_some(), unmet);
        if let Some(w) = why {
            assert!(
                w.contains("apparmor_parser") && w.contains("install"),
                "{w}"
            );
        }
    }

    #[rstest::rstest]
    #[case::apparmor_userns_mediation(
        Some("docker-default (enforce)"),
        "unshare: unshare failed: Permission denied",
        true
    )]
    #[case::seccomp_eperm(
        Some("docker-default (enforce)"),
        "unshare: unshare failed: Operation not permitted",
        false
    )]
    #[case::no_apparmor(None, "unshare: unshare failed: Permission denied", false)]
    #[case::unconfined(
        Some("unconfined"),
        "unshare: unshare failed: Permission denied",
        false
    )]
    fn only_an_apparmor_eacces_under_a_profile_is_an_unmet_need(
        #[case] profile: Option<&str>,
        #[case] stderr: &str,
        #[case] unmet: bool,
    ) {
        assert_eq!(profile_denies_userns(profile, stderr).is_some(), unmet);
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
