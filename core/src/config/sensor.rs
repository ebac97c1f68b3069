//! `sensor`: who this sensor is in the fleet. Required.

use serde::{Deserialize, Serialize};

use super::error::Problem;

/// Identity of the sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    /// Stable id used in document ids, heartbeats and index routing: 1–63 characters of
    /// `a-z`, `0-9` and `-`, starting with a letter or digit.
    pub id: String,
    /// Human-readable name shown in dashboards; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
}

impl Sensor {
    /// Checks the id and name.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let id = &self.id;
        let ok = (1..=63).contains(&id.len())
            && id
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !id.starts_with('-');
        if !ok {
            p.push(Problem::new(
                "sensor.id",
                id,
                "expected 1–63 characters of a-z, 0-9 and '-', not starting with '-' \
                 (it becomes part of document ids and index routing)",
            ));
        }
        if let Some(name) = &self.name {
            if name.trim().is_empty() || name.len() > 128 {
                p.push(Problem::new(
                    "sensor.name",
                    name,
                    "expected 1–128 characters, or leave it out to use the id",
                ));
            }
        }
    }
}
