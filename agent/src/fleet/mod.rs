//! Fleet membership: the heartbeat each sensor ships ([`heartbeat`]) and rule-set updates
//! that never leave a sensor without working rules ([`rules`]), with the client for
//! Suricata's unix-command socket they reload rules through ([`socket`]).

pub mod heartbeat;
pub mod rules;
pub mod socket;

pub use heartbeat::{Heartbeat, HeartbeatWriter};
pub use rules::{RuleSetState, RuleUpdater, RulesError, UpdateReport};
pub use socket::{SocketError, SuricataSocket};
