//! `paths`: where the agent keeps rendered files and Vector its state.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::validate::check_abs_path;

/// Where things live on the sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// Directory of rendered configuration generations (`current` points at the active one).
    #[serde(default = "default_rendered_dir")]
    pub rendered_dir: String,
    /// Vector's data directory: file-source checkpoints and the disk buffer.
    #[serde(default = "default_vector_data_dir")]
    pub vector_data_dir: String,
}

super::schema::default_from_fns! {
    Paths {
        rendered_dir: default_rendered_dir, vector_data_dir: default_vector_data_dir,
    }
}

/// Default rendered-files directory.
pub fn default_rendered_dir() -> String {
    "/var/lib/ids2/rendered".into()
}

/// Default Vector data directory.
pub fn default_vector_data_dir() -> String {
    "/var/lib/vector".into()
}

impl Paths {
    /// Checks that both are absolute paths.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        check_abs_path("paths.rendered_dir", &self.rendered_dir, p);
        check_abs_path("paths.vector_data_dir", &self.vector_data_dir, p);
    }
}
