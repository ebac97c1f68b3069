//! The config.yaml the NixOS module writes is one the agent accepts: for every scenario of
//! nixos/tests/eval.nix (the Pi, the VM test's sensor, basic auth with Redis, both flake
//! modules, the nspawn test's sensor) the agent's own validation (`ids2_core::config`) passes,
//! and for `bare`, which the module's assertions refuse, it fails too. NixOS cannot see into the
//! free-form `services.ids2.settings`: this is where a misspelled or outdated key is caught.
//!
//! Needs `nix-instantiate` and `../shared/nixos-eval`; skips with a message without them.

use std::path::Path;

use ids2_agent::config;

mod support;

/// Each scenario's config.yaml (JSON, which is YAML), by scenario name.
fn config_files() -> Option<Vec<(String, String)>> {
    let scenarios = support::or_skip(support::nixos::evaluate("scenarios"))?;
    Some(
        scenarios
            .as_object()
            .expect("scenarios by name")
            .iter()
            .map(|(name, s)| {
                let value = &s["etc"]["ids2/config.yaml"]["value"];
                assert!(value.is_object(), "{name}: no /etc/ids2/config.yaml");
                (name.clone(), value.to_string())
            })
            .collect(),
    )
}

#[test]
fn the_modules_config_yaml_is_valid_for_the_agent() {
    let Some(files) = config_files() else { return };
    assert!(files.len() >= 6, "{files:?}");
    for (name, text) in files {
        let origin = Path::new("/etc/ids2/config.yaml");
        match (name.as_str(), config::from_str(&text, origin)) {
            ("bare", Err(e)) => eprintln!("bare is refused by the agent too: {e}"),
            ("bare", Ok(_)) => panic!("the agent accepts bare's config.yaml:\n{text}"),
            (_, Ok(settings)) => assert!(!settings.config.sensor.id.is_empty(), "{name}"),
            (_, Err(e)) => {
                panic!("{name}: the agent refuses the module's config.yaml: {e:?}\n{text}")
            }
        }
    }
}

/// The check can fail: a key misspelled in the module's settings is refused, by its path.
#[test]
fn a_misspelled_setting_is_refused() {
    let Some(files) = config_files() else { return };
    let (_, pi5) = files
        .iter()
        .find(|(n, _)| n == "pi5")
        .expect("the pi5 scenario");
    let mut value: serde_json::Value = serde_json::from_str(pi5).unwrap();
    value["capture"]["interfase"] = "eth0".into();
    let err = config::from_str(&value.to_string(), Path::new("/etc/ids2/config.yaml"))
        .expect_err("a misspelled key must be refused");
    let said = format!("{err:?}");
    assert!(said.contains("interfase"), "{said}");
}
