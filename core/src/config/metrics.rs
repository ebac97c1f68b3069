//! `metrics`: the Prometheus endpoint the agent serves.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::error::Problem;

/// The agent's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` the Prometheus endpoint listens on.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

super::schema::default_from_fns! {
    Metrics {
        listen: default_metrics_listen,
    }
}

/// Default metrics address.
pub fn default_metrics_listen() -> String {
    "0.0.0.0:9100".into()
}

impl Metrics {
    /// Checks the address; returns it parsed.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> Option<SocketAddr> {
        match self.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.push(Problem::new(
                    "metrics.listen",
                    &self.listen,
                    "expected address:port, e.g. 0.0.0.0:9100 or [::]:9100",
                ));
                None
            }
        }
    }
}
