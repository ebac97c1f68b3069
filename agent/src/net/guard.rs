//! Applying a [`Plan`] under a rollback guard.
//!
//! Before anything changes, the links (admin state, promiscuous mode), their static addresses
//! and the static routes are snapshotted and every management target is resolved. After the
//! change the targets must answer within the timeout; if one does not (or a step fails),
//! the snapshot is put back. Routes and IPv6 addresses matter because the kernel deletes the
//! routes through a link, and its IPv6 addresses, when the link goes down — setting the link
//! up again alone would leave the operator's default route missing.

use std::fmt;
use std::time::{Duration, Instant};

use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol, RouteType};

use crate::config::{ManagementTarget, Settings};

use super::error::{NetError, RollbackReason, TargetFailure};
use super::plan::Plan;
use super::probe::Probe;
use super::state::{
    address_from, address_is_permanent, default_gateway, route_ip, route_table, Gateway, Link,
    Netlink,
};

const RT_TABLE_LOCAL: u32 = 255;
const EEXIST: i32 = 17;

/// What must stay reachable after a change, and for how long the guard waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// `network.management_targets`.
    pub targets: Vec<ManagementTarget>,
    /// `network.rollback_timeout_secs`.
    pub timeout: Duration,
}

impl Guard {
    /// The guard the settings ask for.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            targets: settings.management_targets.clone(),
            timeout: Duration::from_secs(u64::from(settings.config.network.rollback_timeout_secs)),
        }
    }
}

/// A plan that was applied and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What was changed (empty when the host already complied).
    pub plan: Plan,
    /// The management targets that answered after the change, as `target (how)`.
    pub confirmed: Vec<String>,
}

/// Applies `plan` under `guard`: on a failed step or an unreachable target every link, static
/// address and static route is restored as it was and the error says why.
pub async fn apply(netlink: &Netlink, plan: &Plan, guard: &Guard) -> Result<Applied, NetError> {
    if plan.is_empty() {
        return Ok(Applied {
            plan: plan.clone(),
            confirmed: Vec::new(),
        });
    }
    let snapshot = Snapshot::take(netlink).await?;
    let probes = resolve(&guard.targets, snapshot.gateway)?;

    for change in &plan.changes {
        if let Err(source) = netlink
            .set_link(&change.link, change.up, change.promisc)
            .await
        {
            let reason = RollbackReason::StepFailed {
                change: change.to_string(),
                source,
            };
            return Err(roll_back(netlink, &snapshot, reason).await);
        }
    }

    let deadline = Instant::now() + guard.timeout;
    let results =
        futures::future::join_all(probes.iter().map(|(_, probe)| probe.until(deadline))).await;
    let failures: Vec<TargetFailure> = probes
        .iter()
        .zip(&results)
        .filter_map(|((label, _), result)| {
            result.as_ref().err().map(|detail| TargetFailure {
                target: label.clone(),
                detail: detail.clone(),
            })
        })
        .collect();
    if !failures.is_empty() {
        let reason = RollbackReason::Unreachable {
            timeout_secs: guard.timeout.as_secs(),
            failures,
        };
        return Err(roll_back(netlink, &snapshot, reason).await);
    }
    Ok(Applied {
        plan: plan.clone(),
        confirmed: probes.into_iter().map(|(label, _)| label).collect(),
    })
}

/// Turns targets into probes before anything changes, so an unusable target refuses the
/// change instead of rolling it back.
fn resolve(
    targets: &[ManagementTarget],
    gateway: Option<Gateway>,
) -> Result<Vec<(String, Probe)>, NetError> {
    targets
        .iter()
        .map(|target| match target {
            ManagementTarget::Gateway => {
                let g = gateway.ok_or(NetError::NoGateway)?;
                Ok((
                    format!("gateway {} (ICMP echo)", g.address),
                    Probe::Echo {
                        address: g.address,
                        scope: g.link_index.unwrap_or(0),
                    },
                ))
            }
            ManagementTarget::Host(ip) => Ok((
                format!("{ip} (ICMP echo)"),
                Probe::Echo {
                    address: *ip,
                    scope: 0,
                },
            )),
            ManagementTarget::Tcp(sa) => Ok((format!("{sa} (TCP connect)"), Probe::Connect(*sa))),
        })
        .collect()
}

/// The state a failed change is rolled back to.
struct Snapshot {
    links: Vec<Link>,
    /// Addresses the kernel would not bring back by itself: permanent ones, minus IPv6
    /// link-local (regenerated when the link comes up). Dynamic ones belong to their daemon.
    addresses: Vec<AddressMessage>,
    /// Routes set by someone (not `proto kernel`, which follow the addresses, nor `proto ra`,
    /// which router advertisements renew), outside the local table.
    routes: Vec<RouteMessage>,
    gateway: Option<Gateway>,
}

impl Snapshot {
    async fn take(netlink: &Netlink) -> Result<Self, NetError> {
        let links = netlink.links().await?;
        let addresses = netlink
            .address_messages()
            .await?
            .into_iter()
            .filter(|m| {
                address_is_permanent(m)
                    && address_from(m).is_some_and(|a| match a.address {
                        std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                        std::net::IpAddr::V4(_) => true,
                    })
            })
            .collect();
        let all_routes = netlink.routes().await?;
        let gateway = default_gateway(&all_routes);
        let routes = all_routes
            .into_iter()
            .filter(|r| {
                route_table(r) != RT_TABLE_LOCAL
                    && !matches!(r.header.protocol, RouteProtocol::Kernel | RouteProtocol::Ra)
                    && matches!(
                        r.header.kind,
                        RouteType::Unicast
                            | RouteType::BlackHole
                            | RouteType::Unreachable
                            | RouteType::Prohibit
                    )
            })
            .map(|mut r| {
                r.attributes
                    .retain(|a| !matches!(a, RouteAttribute::CacheInfo(_)));
                r
            })
            .collect();
        Ok(Self {
            links,
            addresses,
            routes,
            gateway,
        })
    }
}

async fn roll_back(netlink: &Netlink, snapshot: &Snapshot, reason: RollbackReason) -> NetError {
    match restore(netlink, snapshot).await {
        Ok(()) => NetError::RolledBack { reason },
        Err(problems) => NetError::RollbackFailed { reason, problems },
    }
}

/// Puts back links, then addresses (which need their link), then routes (which need both),
/// and finally checks the links against the snapshot.
async fn restore(netlink: &Netlink, snapshot: &Snapshot) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let current = netlink.links().await.map_err(|e| vec![e.to_string()])?;
    for before in &snapshot.links {
        let Some(now) = current.iter().find(|l| l.index == before.index) else {
            problems.push(format!(
                "link {} (index {}) has disappeared",
                before.name, before.index
            ));
            continue;
        };
        let up = (now.admin_up != before.admin_up).then_some(before.admin_up);
        let promisc = (now.promisc != before.promisc).then_some(before.promisc);
        if up.is_none() && promisc.is_none() {
            continue;
        }
        if let Err(e) = netlink.set_link(now, up, promisc).await {
            problems.push(format!("restore {}: {e}", before.name));
        }
    }

    let present = netlink.addresses().await.unwrap_or_default();
    for message in &snapshot.addresses {
        let Some(address) = address_from(message) else {
            continue;
        };
        if present.contains(&address) {
            continue;
        }
        if let Err(e) = netlink.add_address(&address, message.clone()).await {
            if !already_exists(&e) {
                problems.push(format!(
                    "restore address {}/{}: {e}",
                    address.address, address.prefix_len
                ));
            }
        }
    }
    for route in &snapshot.routes {
        if let Err(e) = netlink.add_route(route.clone()).await {
            if !already_exists(&e) {
                problems.push(format!("restore route {}: {e}", RouteLabel(route)));
            }
        }
    }

    match netlink.links().await {
        Ok(after) => {
            for before in &snapshot.links {
                let same = after.iter().any(|l| {
                    l.index == before.index
                        && l.admin_up == before.admin_up
                        && l.promisc == before.promisc
                });
                if !same && !problems.iter().any(|p| p.contains(&before.name)) {
                    problems.push(format!("link {} did not return to its state", before.name));
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn already_exists(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == EEXIST)
}

/// A route in `ip route` style for messages.
struct RouteLabel<'a>(&'a RouteMessage);

impl fmt::Display for RouteLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let mut destination = None;
        let mut gateway = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(d) => destination = route_ip(d),
                RouteAttribute::Gateway(g) => gateway = route_ip(g),
                _ => {}
            }
        }
        match destination {
            Some(d) => write!(f, "{d}/{}", r.header.destination_prefix_length)?,
            None => f.write_str("default")?,
        }
        if let Some(g) = gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " table {}", route_table(r))
    }
}
