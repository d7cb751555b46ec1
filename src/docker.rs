//! The Docker engine: probe, start/stop, the suite's image and containers.

/// (server version, reason when unusable)
pub fn probe_engine() -> (Option<String>, Option<String>) {
    (
        None,
        Some("needs a Docker engine (not yet supported)".into()),
    )
}

/// The suite's containers: (id, tag label).
pub fn suite_containers() -> Vec<(String, String)> {
    Vec::new()
}

pub fn remove_container(id: &str) -> Result<(), String> {
    Err(format!(
        "cannot remove container {id}: docker support not built"
    ))
}
