//! Where the ECS program comes from: `render` renders `templates/ecs.vrl.tera` once for both
//! `vector.toml` and the [`super::Mapper`], so the two cannot run different programs.

pub use crate::render::{ecs_program, ecs_program_for, split_program, ProgramVars};

/// The event field that carries the deterministic document id. Vector's elasticsearch sink
/// must read it with `id_key = "event.id"` (it removes the field from the body it sends).
pub const ID_FIELD: &str = "event.id";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> ProgramVars {
        ProgramVars {
            sensor_id: "lab-1".into(),
            sensor_name: name.into(),
            interface: "eth0".into(),
            home_net: vec!["10.0.0.0/8".into(), "fd00::/8".into()],
            evidence: true,
        }
    }

    #[test]
    fn values_are_embedded_as_vrl_string_literals() {
        let src = ecs_program_for(&vars(r#"Lab "A" \ 1"#)).unwrap();
        assert!(src.contains(r#""name": "Lab \"A\" \\ 1","#), "{src}");
        assert!(src.contains(r#"ip_cidr_contains(["10.0.0.0/8","fd00::/8"], sip)"#));
        assert!(
            !src.contains("{{") && !src.contains("{%"),
            "unrendered tera left"
        );
    }
}
