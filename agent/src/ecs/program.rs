//! Renders `templates/ecs.vrl.tera` with the sensor's identity and HOME_NET.
//!
//! The render helper's `render::ecs_program` renders the same template for `vector.toml`; this
//! copy lets the ECS mapper and its tests stand on their own (same signature, same variables).

use serde::Serialize;

use super::EcsError;
use crate::config::Settings;

/// The program template as shipped.
pub const ECS_VRL_TEMPLATE: &str = include_str!("../../../templates/ecs.vrl.tera");

/// The event field that carries the deterministic document id. Vector's elasticsearch sink
/// must read it with `id_key = "event.id"` (it removes the field from the body it sends).
pub const ID_FIELD: &str = "event.id";

/// The tera variables the template uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramVars {
    /// `sensor.id`: part of every document id and `observer.hostname`.
    pub sensor_id: String,
    /// `sensor.name`: `observer.name`.
    pub sensor_name: String,
    /// `capture.interface`: `observer.ingress.interface.name` when the EVE has no `in_iface`.
    pub interface: String,
    /// `capture.home_net` as CIDR strings: decides `network.direction`.
    pub home_net: Vec<String>,
}

impl ProgramVars {
    /// The variables for a validated config.
    pub fn from_settings(settings: &Settings) -> Self {
        let c = &settings.config;
        Self {
            sensor_id: c.sensor.id.clone(),
            sensor_name: c.sensor.name.clone().unwrap_or_else(|| c.sensor.id.clone()),
            interface: c.capture.interface.clone(),
            home_net: settings.home_net.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// Renders the program source from `template` (normally [`ECS_VRL_TEMPLATE`]).
    pub fn render(&self, template: &str) -> Result<String, EcsError> {
        let context = tera::Context::from_serialize(self).map_err(EcsError::Render)?;
        tera::Tera::one_off(template, &context, false).map_err(EcsError::Render)
    }
}

/// The VRL source `vector.toml` embeds for these settings.
pub fn ecs_program(settings: &Settings) -> Result<String, EcsError> {
    ProgramVars::from_settings(settings).render(ECS_VRL_TEMPLATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> ProgramVars {
        ProgramVars {
            sensor_id: "lab-1".into(),
            sensor_name: name.into(),
            interface: "eth0".into(),
            home_net: vec!["10.0.0.0/8".into(), "fd00::/8".into()],
        }
    }

    #[test]
    fn values_are_embedded_as_vrl_string_literals() {
        let src = vars(r#"Lab "A" \ 1"#).render(ECS_VRL_TEMPLATE).unwrap();
        assert!(src.contains(r#""name": "Lab \"A\" \\ 1","#), "{src}");
        assert!(src.contains(r#"ip_cidr_contains(["10.0.0.0/8","fd00::/8"], .source.ip)"#));
        assert!(
            !src.contains("{{") && !src.contains("{%"),
            "unrendered tera left"
        );
    }
}
