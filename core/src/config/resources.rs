//! `resources`: the ceilings the resource controller keeps the host under.

use serde::{Deserialize, Serialize};

use super::error::Problem;

/// Resource ceilings, in percent of the host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Host CPU use the controller keeps at or under.
    #[serde(default = "default_ceiling_percent")]
    pub cpu_max_percent: u8,
    /// Host RAM use the controller keeps at or under.
    #[serde(default = "default_ceiling_percent")]
    pub ram_max_percent: u8,
    /// Seconds between resource samples.
    #[serde(default = "default_sample_secs")]
    pub sample_secs: u32,
}

super::schema::default_from_fns! {
    Resources {
        cpu_max_percent: default_ceiling_percent, ram_max_percent: default_ceiling_percent,
        sample_secs: default_sample_secs,
    }
}

/// Default CPU and RAM ceiling.
pub fn default_ceiling_percent() -> u8 {
    70
}

/// Default resource sampling period.
pub fn default_sample_secs() -> u32 {
    5
}

impl Resources {
    /// Checks the ceilings and the sampling period.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let r = self;
        for (key, v) in [
            ("resources.cpu_max_percent", r.cpu_max_percent),
            ("resources.ram_max_percent", r.ram_max_percent),
        ] {
            if !(10..=95).contains(&v) {
                p.push(Problem::new(
                    key,
                    v,
                    "expected 10 to 95 percent (default 70)",
                ));
            }
        }
        if !(1..=300).contains(&r.sample_secs) {
            p.push(Problem::new(
                "resources.sample_secs",
                r.sample_secs,
                "expected 1 to 300 seconds",
            ));
        }
    }
}
