//! Parsers of kernel and tool output, and the needs vocabulary.

use super::*;

// ---- parsers ----

#[rstest]
#[case("6.18.44-fc-v782", (6, 18, 44))]
#[case("5.10.0-32-cloud-amd64", (5, 10, 0))]
#[case("6.12.12+bpo-cloud-amd64", (6, 12, 12))]
#[case("garbage", (0, 0, 0))]
fn kernel_versions_parse(#[case] release: &str, #[case] want: (u32, u32, u32)) {
    assert_eq!(parse_kernel_version(release), want);
}

#[rstest]
#[case("/tmp/a\\040b", "/tmp/a b")]
#[case("/x\\011y\\012z\\134", "/x\ty\nz\\")]
#[case("/plain", "/plain")]
#[case("/trailing\\04", "/trailing\\04")]
fn mountinfo_escapes_decode(#[case] raw: &str, #[case] want: &str) {
    assert_eq!(unescape_mount(raw), want);
}

const HYBRID: &str = "\
25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

#[rstest]
#[case::hybrid(HYBRID, "hybrid", vec!["cpu", "cpuacct", "memory", "pids"], vec!["hugetlb"])]
#[case::v2_only("26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "v2", vec![], vec!["hugetlb"])]
#[case::v1_only("27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "v1", vec!["memory"], vec![])]
#[case::none("1 0 0:1 / / rw - ext4 /dev/vda rw\n", "none", vec![], vec![])]
fn cgroup_layouts_are_recognised(
    #[case] mountinfo: &str,
    #[case] layout: &str,
    #[case] v1: Vec<&str>,
    #[case] v2: Vec<&str>,
) {
    let l = CgroupLayout::from_mountinfo(mountinfo, |_| "hugetlb\n".into());
    assert_eq!(l.layout, layout);
    assert_eq!(l.v1, v1);
    assert_eq!(l.v2, v2);
    if layout == "hybrid" {
        assert_eq!(
            l.v1_mounts["cpuacct"].to_str(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(l.has("hugetlb") && l.has("memory") && !l.has("rdma"));
    }
}

#[rstest]
#[case("pid:[4026531836]", Some(("pid", 4026531836)))]
#[case("time_for_children:[4026531834]", Some(("time_for_children", 4026531834)))]
#[case("pid:4026531836", None)]
#[case("net:[x]", None)]
fn ns_links_parse(#[case] link: &str, #[case] want: Option<(&str, u64)>) {
    assert_eq!(parse_ns_link(link), want);
}

#[rstest]
#[case::numbers(r#"{"namespaces":[{"ns":4026532200,"type":"pid","nprocs":2,"pid":77}]}"#)]
#[case::strings(r#"{"namespaces":[{"ns":"4026532200","type":"pid","nprocs":"2","pid":"77"}]}"#)]
fn lsns_json_parses_numbers_and_strings(#[case] text: &str) {
    let rows = parse_lsns_json(text).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].ns, rows[0].nprocs, rows[0].pid),
        (4026532200, 2, 77)
    );
    assert_eq!(rows[0].kind, "pid");
}

#[test]
fn lsns_json_rejects_rows_without_nprocs() {
    assert!(parse_lsns_json(r#"{"namespaces":[{"ns":1,"type":"pid","pid":1}]}"#).is_err());
}

#[rstest]
#[case("Name:\tsh\nNSpid:\t4242\t1\n", Some(vec![4242, 1]))]
#[case("NSpid:\t17\n", Some(vec![17]))]
#[case("Name:\tsh\n", None)]
fn nspid_parses(#[case] status: &str, #[case] want: Option<Vec<i32>>) {
    assert_eq!(parse_nspid(status), want);
}

// ---- the needs vocabulary ----

#[rstest]
#[case(Need::Root)]
#[case(Need::Tool(Tool::Ip))]
#[case(Need::Tool(Tool::QemuSystem))]
#[case(Need::Cgroup(Controller::Memory))]
#[case(Need::CgroupV1(Controller::Pids))]
#[case(Need::CgroupV2)]
#[case(Need::CgroupV2Ctrl(Controller::Memory))]
#[case(Need::Cgroup(Controller::Freezer))]
#[case(Need::Kernel(5, 6))]
#[case(Need::UserNamespaces)]
#[case(Need::LibseccompDev)]
#[case(Need::Docker)]
fn needs_round_trip_through_their_names(#[case] need: Need) {
    assert_eq!(Need::from_name(&need.to_string()), Ok(need));
}

#[rstest]
#[case("rooot")]
#[case("cmd:nosuchtool")]
#[case("cgroup:rdma")]
#[case("kernel>=5")]
#[case("")]
fn unknown_need_names_are_errors(#[case] name: &str) {
    assert!(Need::from_name(name).is_err(), "{name:?} must not parse");
}
