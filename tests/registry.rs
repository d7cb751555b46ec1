//! The registry against what is derived from it or must agree with it:
//! the catalogue (fixtures/catalogue-ids.txt and ../shared/spec/catalogue.md),
//! README.md's table, the needs vocabulary and ci/install-host-deps.sh.
//! Each failure names the fix (docs/writing-experiments.md, step 5).

use assert_cmd::Command;
use isocheck::needs::{Need, Tool};

fn isocheck() -> Command {
    Command::cargo_bin("isocheck").expect("the isocheck binary")
}

#[test]
fn every_registered_need_is_in_the_vocabulary_and_every_id_is_unique() {
    let all = isocheck::experiments::all();
    let mut ids: Vec<&str> = all.iter().map(|e| e.id).collect();
    for e in &all {
        let prefix = e.id.split('.').next().unwrap();
        assert!(
            e.section.id_prefixes().contains(&prefix),
            "{} is filed under section {}",
            e.id,
            e.section.key()
        );
        for n in e.needs {
            assert_eq!(Need::from_name(&n.to_string()).as_ref(), Ok(n));
        }
    }
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate experiment ids");
}

#[test]
fn readme_lists_every_experiment_as_the_registry_has_it() {
    let out = isocheck()
        .args(["list", "--markdown"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, rest) = readme
        .split_once("<!-- experiments:begin -->\n")
        .expect("begin marker");
    let (current, _) = rest
        .split_once("<!-- experiments:end -->")
        .expect("end marker");
    assert_eq!(
        current.trim(),
        table.trim(),
        "README's table is stale: run ci/update-readme.sh"
    );
}

fn read_repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The ids of fixtures/catalogue-ids.txt, in order.
fn catalogue_ids_file() -> Vec<String> {
    read_repo_file("fixtures/catalogue-ids.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What is in `a` and not in `b`.
fn missing_from(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// fixtures/catalogue-pending.txt: catalogue ids no experiment implements yet.
fn pending_ids_file() -> Vec<String> {
    read_repo_file("fixtures/catalogue-pending.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The registry plus the pending list is the catalogue: every catalogue id
/// is an experiment or pending (never both), every experiment is a
/// catalogue id, and both keep the catalogue's order.
#[test]
fn registry_and_pending_are_the_catalogue() {
    let catalogue = catalogue_ids_file();
    let pending = pending_ids_file();
    let registry: Vec<String> = isocheck::experiments::all()
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    let unlisted = missing_from(&registry, &catalogue);
    assert!(
        unlisted.is_empty(),
        "experiments without a catalogue id: {unlisted:?}: add each to \
         ../shared/spec/catalogue.md and fixtures/catalogue-ids.txt (docs/writing-experiments.md)"
    );
    let both: Vec<String> = registry
        .iter()
        .filter(|id| pending.contains(id))
        .cloned()
        .collect();
    assert!(
        both.is_empty(),
        "built and still pending: {both:?}: remove them from fixtures/catalogue-pending.txt"
    );
    let not_in_catalogue = missing_from(&pending, &catalogue);
    assert!(
        not_in_catalogue.is_empty(),
        "fixtures/catalogue-pending.txt names ids the catalogue lacks: {not_in_catalogue:?}"
    );
    let neither: Vec<String> = catalogue
        .iter()
        .filter(|id| !registry.contains(id) && !pending.contains(id))
        .cloned()
        .collect();
    assert!(
        neither.is_empty(),
        "catalogue ids neither built nor pending: {neither:?}: build them or list them \
         in fixtures/catalogue-pending.txt"
    );
    let in_order = |list: &[String]| -> Vec<String> {
        catalogue
            .iter()
            .filter(|id| list.contains(id))
            .cloned()
            .collect()
    };
    assert_eq!(
        registry,
        in_order(&registry),
        "the registry's order is the catalogue's"
    );
    assert_eq!(
        pending,
        in_order(&pending),
        "fixtures/catalogue-pending.txt keeps the catalogue's order"
    );
}

/// The binary embeds the same lists (`isocheck list` shows pending rows as
/// "not built yet", and `run` never reports them).
#[test]
fn list_shows_pending_rows_as_not_built_yet() {
    let out = isocheck()
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for id in pending_ids_file() {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} is not in `isocheck list`"));
        assert!(line.ends_with("not built yet"), "{line}");
    }
    for e in isocheck::experiments::all() {
        assert!(
            !text.contains(&format!("{} not built yet", e.id)),
            "{} is built",
            e.id
        );
    }
}

/// fixtures/catalogue-ids.txt is the id column of the catalogue itself
/// (../shared/spec/catalogue.md, outside this repository: skipped, saying
/// so, where that checkout is absent).
#[test]
fn catalogue_ids_file_is_the_catalogues_id_column() {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/catalogue.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        eprintln!("skipping: {} is absent", spec.display());
        return;
    };
    let id = regex_lite_id;
    let spec_ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split_once(" |"))
        .map(|(first, _)| first.trim())
        .filter(|c| id(c))
        .map(str::to_string)
        .collect();
    assert!(spec_ids.len() > 50, "parsed only {} ids", spec_ids.len());
    let file = catalogue_ids_file();
    assert!(
        file == spec_ids,
        "fixtures/catalogue-ids.txt differs from {}: ids only in the file {:?}, only in the \
         catalogue {:?} (or in another order); fix the catalogue, then run ci/update-readme.sh",
        spec.display(),
        missing_from(&file, &spec_ids),
        missing_from(&spec_ids, &file)
    );
}

/// A catalogue id: `prefix.name`, lower case, digits and dashes.
fn regex_lite_id(c: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    };
    c.split_once('.').is_some_and(|(a, b)| ok(a) && ok(b))
}

/// Every tool a need can name (and the libseccomp headers) comes from a
/// package that ci/install-host-deps.sh installs, by default or with one
/// of its flags.
#[test]
fn install_host_deps_installs_every_tools_package() {
    let script = read_repo_file("ci/install-host-deps.sh");
    let mut installed: Vec<&str> = Vec::new();
    for part in script.split("want").skip(1) {
        let Some(list) = part.strip_prefix("=(").or_else(|| part.strip_prefix("+=(")) else {
            continue;
        };
        let list = list.split(')').next().unwrap_or("");
        installed.extend(list.split_whitespace());
    }
    assert!(installed.contains(&"iproute2"), "parsed {installed:?}");
    let mut wanted: Vec<&str> = Tool::ALL.iter().map(|t| t.package()).collect();
    wanted.push("libseccomp-dev");
    let missing: Vec<&&str> = wanted.iter().filter(|p| !installed.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "ci/install-host-deps.sh does not install {missing:?} (Tool::package): add them to `want`"
    );
}

/// `needs!` joins groups: two groups must not both bring the same need.
#[test]
fn no_experiment_lists_a_need_twice() {
    for e in isocheck::experiments::all() {
        for (i, n) in e.needs.iter().enumerate() {
            assert!(!e.needs[..i].contains(n), "{} lists {n} twice", e.id);
        }
    }
}

#[test]
fn kconfig_fragment_is_the_registrys() {
    let out = isocheck()
        .args(["list", "--kconfig"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let generated = String::from_utf8(out).unwrap();
    assert_eq!(
        read_repo_file("ci/kernel/isocheck.config"),
        generated,
        "ci/kernel/isocheck.config is stale: run ci/update-readme.sh"
    );
    for e in isocheck::experiments::all() {
        for n in e.needs {
            if let Need::Kconfig(o) = n {
                assert!(generated.contains(&format!("{o}=y\n")), "{}: {o}", e.id);
            }
        }
    }
}
