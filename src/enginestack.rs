//! The engine the Docker rows ran against, as facts for the report: its
//! versions, runtime, cgroup driver and what a default container gets
//! (cgroupns mode, masked and read-only paths), read once per run from
//! `/version`, `/info` and one probe container. The same probe tells whether
//! the engine's runtime can start a container on this host at all (crun
//! refuses a hybrid cgroup layout): if not, every Docker row is ignored with
//! the runtime's own message instead of breaking one by one.

use crate::cleanup;
use crate::docker;
use crate::dockerapi::api;
use serde_json::{json, Value};
use std::sync::OnceLock;

struct Probe {
    unmet: Option<String>,
    stack: Value,
}

static PROBE: OnceLock<Probe> = OnceLock::new();

/// Why no container can start on this engine here, in the runtime's words;
/// None when one started (or when the probe itself could not tell: the rows
/// then say what went wrong). Probed on first call, once per run.
pub fn runtime_unmet() -> Option<String> {
    PROBE.get_or_init(probe).unmet.clone()
}

/// The stack facts, when a Docker row of this run probed them.
pub fn stack() -> Option<Value> {
    PROBE.get().map(|p| p.stack.clone())
}

fn get_json(path: &str) -> Value {
    match api("GET", path) {
        Ok(r) if r.status == 200 => serde_json::from_str(&r.body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The facts of the engine's `/version` and `/info` answers.
pub fn stack_of(version: &Value, info: &Value) -> Value {
    let runtime = info["DefaultRuntime"].as_str().unwrap_or("runc");
    let component = |name: &str| {
        version["Components"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["Name"] == name)
            .map_or(Value::Null, |c| c["Version"].clone())
    };
    json!({
        "engine": version["Version"],
        "api": version["ApiVersion"],
        "containerd": component("containerd"),
        "runtime": runtime,
        // The engine names the default runtime's component after it.
        "runtime_version": component(runtime),
        "cgroup_driver": info["CgroupDriver"],
        "cgroup_version": info["CgroupVersion"],
        // apparmor, seccomp's profile, cgroupns, rootless, userns-remap.
        "security_options": info["SecurityOptions"],
    })
}

/// The stack in a few words for a column head (`docker 28.5.2 · containerd
/// 2.1.9 · runc 1.3.6`), packaging suffixes (`+dfsg4`, `~ds1`) cut.
pub fn label(stack: &Value) -> String {
    let short = |v: &Value| {
        v.as_str()
            .map(|s| s.split(['+', '~']).next().unwrap_or(s).to_string())
    };
    let mut parts = Vec::new();
    if let Some(e) = short(&stack["engine"]) {
        parts.push(format!("docker {e}"));
    }
    if let Some(c) = short(&stack["containerd"]) {
        parts.push(format!("containerd {c}"));
    }
    if let Some(r) = stack["runtime"].as_str() {
        let v = short(&stack["runtime_version"]).unwrap_or_default();
        parts.push(format!("{r} {v}").trim().to_string());
    }
    parts.join(" · ")
}

/// What a default container's inspect shows of the engine's defaults.
pub fn container_defaults(inspect: &Value) -> Value {
    let hc = &inspect["HostConfig"];
    json!({
        "cgroupns_mode": hc["CgroupnsMode"],
        "masked_paths": hc["MaskedPaths"],
        "readonly_paths": hc["ReadonlyPaths"],
    })
}

/// The runtime's part of an engine's start error: after the last
/// "OCI runtime create failed: ", or the whole message.
pub fn runtime_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    match msg.rsplit_once("OCI runtime create failed: ") {
        Some((_, tail)) => tail.trim_end_matches(": unknown").to_string(),
        None => msg,
    }
}

fn probe() -> Probe {
    let mut stack = stack_of(&get_json("/version"), &get_json("/info"));
    let runtime = stack["runtime"].as_str().unwrap_or("runc").to_string();
    let name = format!("{}probe", cleanup::run_tag().as_str());
    let unmet = probe_container(&name, &runtime, &mut stack);
    let _ = docker::remove_container(&name);
    Probe { unmet, stack }
}

/// Creates (CLI, as the rows do) and starts (API) a container running
/// `true`; adds its defaults to `stack`.
fn probe_container(name: &str, runtime: &str, stack: &mut Value) -> Option<String> {
    let image = docker::image().ok()?;
    let created = crate::process::run(
        crate::process::command(docker::client())
            .args(["create", "--name", name, "--label"])
            .arg(format!("{}={name}", docker::LABEL))
            .args([image.as_str(), "true"]),
    )
    .ok()?;
    if !created.success() {
        return None;
    }
    let inspect = get_json(&format!("/containers/{name}/json"));
    if let (Some(s), Value::Object(d)) = (stack.as_object_mut(), container_defaults(&inspect)) {
        s.extend(d);
    }
    let started = api("POST", &format!("/containers/{name}/start")).ok()?;
    if (200..300).contains(&started.status) {
        return None;
    }
    let msg = runtime_message(&started.body);
    started.body.contains("OCI runtime").then(|| {
        format!("the engine's runtime {runtime} cannot start a container on this host: {msg}")
    })
}

/// The stack facts that differ between two reports' engines, as
/// (fact, old, new); a list fact (masked paths) by the entries that came
/// and went. Nothing when neither report has a stack.
pub fn changes(old: Option<&Value>, new: Option<&Value>) -> Vec<(String, String, String)> {
    let (o, n) = (old.unwrap_or(&Value::Null), new.unwrap_or(&Value::Null));
    let mut keys: Vec<&String> = [o, n]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let show = |v: &Value| match v {
        Value::Null => "absent".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (&o[k.as_str()], &n[k.as_str()]);
        if a == b {
            continue;
        }
        match (a.as_array(), b.as_array()) {
            (Some(a), Some(b)) => {
                let gone: Vec<String> = a.iter().filter(|x| !b.contains(x)).map(show).collect();
                let came: Vec<String> = b.iter().filter(|x| !a.contains(x)).map(show).collect();
                out.push((
                    k.clone(),
                    format!("-[{}]", gone.join(", ")),
                    format!("+[{}]", came.join(", ")),
                ));
            }
            _ => out.push((k.clone(), show(a), show(b))),
        }
    }
    out
}

/// `isocheck diff`'s section on the engines' stacks.
pub fn render_changes(old: Option<&Value>, new: Option<&Value>) -> String {
    if old.is_none() && new.is_none() {
        return String::new();
    }
    let mut s = String::from("changed facts of the container stack (engine, runtime):\n");
    let c = changes(old, new);
    if c.is_empty() {
        s.push_str("  none\n");
    }
    for (k, a, b) in c {
        s.push_str(&format!("  {k:<44} {a} -> {b}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Recorded from Debian bookworm's docker.io and sid's (trimmed).
    const V20: &str = r#"{"Version":"20.10.24+dfsg1","ApiVersion":"1.41","Components":[{"Name":"Engine","Version":"20.10.24+dfsg1"},{"Name":"containerd","Version":"1.6.20~ds1"},{"Name":"runc","Version":"1.1.5+ds1"},{"Name":"docker-init","Version":"0.19.0"}]}"#;
    const I20: &str = r#"{"DefaultRuntime":"runc","CgroupDriver":"cgroupfs","CgroupVersion":"1","SecurityOptions":["name=seccomp,profile=default"]}"#;
    const V28: &str = r#"{"Version":"28.5.2+dfsg4","ApiVersion":"1.51","Components":[{"Name":"containerd","Version":"2.1.9~ds1"},{"Name":"crun","Version":"1.28"}]}"#;
    const I28: &str = r#"{"DefaultRuntime":"crun","CgroupDriver":"cgroupfs","CgroupVersion":"1"}"#;

    #[rstest]
    #[case(V20, I20, "20.10.24+dfsg1", "1.41", "1.6.20~ds1", "runc", "1.1.5+ds1")]
    #[case(V28, I28, "28.5.2+dfsg4", "1.51", "2.1.9~ds1", "crun", "1.28")]
    fn reads_the_stack(
        #[case] v: &str,
        #[case] i: &str,
        #[case] engine: &str,
        #[case] api: &str,
        #[case] containerd: &str,
        #[case] runtime: &str,
        #[case] runtime_version: &str,
    ) {
        let s = stack_of(
            &serde_json::from_str(v).unwrap(),
            &serde_json::from_str(i).unwrap(),
        );
        assert_eq!(s["engine"], engine);
        assert_eq!(s["api"], api);
        assert_eq!(s["containerd"], containerd);
        assert_eq!(s["runtime"], runtime);
        assert_eq!(s["runtime_version"], runtime_version);
        assert_eq!(s["cgroup_driver"], "cgroupfs");
        assert_eq!(
            s["security_options"][0] == "name=seccomp,profile=default",
            runtime == "runc"
        );
    }

    #[rstest]
    #[case::sid(json!({"engine": "28.5.2+dfsg4", "containerd": "2.1.9+unknown", "runtime": "runc", "runtime_version": "1.3.6+ds1"}), "docker 28.5.2 · containerd 2.1.9 · runc 1.3.6")]
    #[case::bookworm(json!({"engine": "20.10.24+dfsg1", "containerd": "1.6.20~ds1", "runtime": "runc", "runtime_version": "1.1.5+ds1"}), "docker 20.10.24 · containerd 1.6.20 · runc 1.1.5")]
    #[case::no_answer(json!({"engine": null, "runtime": "crun"}), "crun")]
    fn labels_a_column_by_its_stack(#[case] stack: Value, #[case] want: &str) {
        assert_eq!(label(&stack), want);
    }

    #[test]
    fn an_engine_that_does_not_answer_gives_nulls_not_a_panic() {
        let s = stack_of(&Value::Null, &Value::Null);
        assert_eq!(s["engine"], Value::Null);
        assert_eq!(s["runtime"], "runc");
    }

    #[test]
    fn reads_a_default_containers_defaults() {
        let i: Value = serde_json::from_str(
            r#"{"HostConfig":{"CgroupnsMode":"host","MaskedPaths":["/proc/asound","/proc/interrupts"],"ReadonlyPaths":["/proc/bus"]}}"#,
        )
        .unwrap();
        let d = container_defaults(&i);
        assert_eq!(d["cgroupns_mode"], "host");
        assert_eq!(d["masked_paths"][1], "/proc/interrupts");
        assert_eq!(d["readonly_paths"], json!(["/proc/bus"]));
    }

    #[test]
    fn lists_the_stack_facts_that_changed() {
        let old = json!({"engine": "20.10.24", "runtime": "runc", "masked_paths": ["/proc/acpi", "/proc/kcore"]});
        let new = json!({"engine": "28.5.2", "runtime": "runc", "masked_paths": ["/proc/acpi", "/proc/interrupts"]});
        let c = changes(Some(&old), Some(&new));
        assert_eq!(
            c,
            vec![
                ("engine".into(), "20.10.24".into(), "28.5.2".into()),
                (
                    "masked_paths".into(),
                    "-[/proc/kcore]".into(),
                    "+[/proc/interrupts]".into()
                ),
            ]
        );
        assert!(render_changes(None, None).is_empty());
        assert!(render_changes(Some(&old), Some(&old)).contains("  none"));
        assert_eq!(
            changes(None, Some(&new))[0],
            ("engine".into(), "absent".into(), "28.5.2".into())
        );
    }

    #[rstest]
    #[case(
        r#"{"message":"failed to create task for container: failed to create shim task: OCI runtime create failed: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2: unknown"}"#,
        "crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2"
    )]
    #[case(r#"{"message":"no such image"}"#, "no such image")]
    #[case("plain text\n", "plain text")]
    fn takes_the_runtimes_words(#[case] body: &str, #[case] want: &str) {
        assert_eq!(runtime_message(body), want);
    }
}
