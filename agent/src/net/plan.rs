//! The "capture interface only" policy as a pure plan: current links + settings → changes.

use std::fmt;

use crate::config::Settings;

use super::error::NetError;
use super::state::Link;

/// The loopback link, always left as it is: local services (metrics, the Suricata socket
/// clients) depend on it and it exposes nothing on the wire.
pub const LOOPBACK: &str = "lo";

/// One link's change: each field is `Some` only when it differs from the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The link as read when planning.
    pub link: Link,
    /// New admin state.
    pub up: Option<bool>,
    /// New promiscuous mode.
    pub promisc: Option<bool>,
}

/// The changes that bring a host to the policy, capture interface first so the sensor's
/// management path is up before anything else goes down. Empty when the host complies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `capture.interface`.
    pub capture: String,
    /// The changes, in the order they are applied.
    pub changes: Vec<Change>,
}

impl Plan {
    /// True when the host already complies.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plans the policy: every link but `lo` and the capture interface down, the capture
/// interface up and promiscuous. Refuses when the capture interface does not exist.
pub fn plan(links: &[Link], settings: &Settings) -> Result<Plan, NetError> {
    let capture = &settings.config.capture.interface;
    let Some(capture_link) = links.iter().find(|l| &l.name == capture) else {
        return Err(NetError::CaptureMissing {
            interface: capture.clone(),
            available: links.iter().map(|l| l.name.clone()).collect(),
        });
    };
    let mut changes = Vec::new();
    let wanted = Change {
        link: capture_link.clone(),
        up: (!capture_link.admin_up).then_some(true),
        promisc: (!capture_link.promisc).then_some(true),
    };
    if wanted.up.is_some() || wanted.promisc.is_some() {
        changes.push(wanted);
    }
    changes.extend(
        links
            .iter()
            .filter(|l| l.name != LOOPBACK && &l.name != capture && l.admin_up)
            .map(|l| Change {
                link: l.clone(),
                up: Some(false),
                promisc: None,
            }),
    );
    Ok(Plan {
        capture: capture.clone(),
        changes,
    })
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match self.up {
            Some(true) => parts.push("set up"),
            Some(false) => parts.push("set down"),
            None => {}
        }
        match self.promisc {
            Some(true) => parts.push("promiscuous on"),
            Some(false) => parts.push("promiscuous off"),
            None => {}
        }
        write!(f, "{}: {}", self.link.name, parts.join(", "))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return write!(
                f,
                "plan: no changes (only {LOOPBACK} and {} may be up; {} is up and promiscuous)",
                self.capture, self.capture
            );
        }
        write!(f, "plan: {} change(s)", self.changes.len())?;
        for change in &self.changes {
            write!(f, "\n  - {change}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn settings(interface: &str) -> Settings {
        crate::config::from_str(
            &format!(
                "sensor: {{id: t}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n\
                 capture: {{interface: {interface}}}\n"
            ),
            Path::new("t.yaml"),
        )
        .unwrap()
    }

    fn link(index: u32, name: &str, up: bool, promisc: bool) -> Link {
        Link {
            index,
            name: name.into(),
            admin_up: up,
            oper_state: if up { "up" } else { "down" }.into(),
            promisc,
            kind: Some("veth".into()),
        }
    }

    fn summary(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn mixed_states_capture_first_then_every_other_up_link_down() {
        let links = [
            link(1, "lo", true, false),
            link(2, "wlan0", true, true),
            link(3, "eth0", false, false),
            link(4, "eth1", true, false),
            link(5, "br0", false, false),
        ];
        let plan = plan(&links, &settings("eth0")).unwrap();
        assert_eq!(
            summary(&plan),
            [
                "eth0: set up, promiscuous on",
                "wlan0: set down",
                "eth1: set down"
            ]
        );
    }

    #[test]
    fn compliant_host_gives_empty_plan() {
        let links = [
            link(1, "lo", true, false),
            link(2, "eth0", true, true),
            link(3, "eth1", false, true),
        ];
        let plan = plan(&links, &settings("eth0")).unwrap();
        assert!(plan.is_empty(), "{plan}");
        assert!(plan.to_string().starts_with("plan: no changes"));
    }

    #[test]
    fn loopback_left_alone_whatever_its_state() {
        let links = [link(1, "lo", false, false), link(2, "eth0", true, true)];
        assert!(plan(&links, &settings("eth0")).unwrap().is_empty());
    }

    #[test]
    fn capture_up_but_not_promiscuous_only_gets_promiscuous() {
        let links = [link(1, "lo", true, false), link(2, "end0", true, false)];
        let plan = plan(&links, &settings("end0")).unwrap();
        assert_eq!(summary(&plan), ["end0: promiscuous on"]);
    }

    #[test]
    fn missing_capture_interface_refused_naming_the_links_present() {
        let links = [link(1, "lo", true, false), link(2, "eth1", true, false)];
        let err = plan(&links, &settings("eth0")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, NetError::CaptureMissing { .. }));
        assert!(text.contains("`eth0` does not exist"), "{text}");
        assert!(text.contains("lo, eth1"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
    }
}
