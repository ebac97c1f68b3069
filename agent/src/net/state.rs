//! Reading (and setting) link state over rtnetlink in the current network namespace.

use std::fmt;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::error::NetError;

/// One network link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operational state (RFC 2863), lower case: `up`, `down`, `lowerlayerdown`, `unknown`, …
    pub oper_state: String,
    /// Promiscuous mode requested (`IFF_PROMISC`).
    pub promisc: bool,
    /// Link kind (`veth`, `bridge`, …) when the kernel reports one; physical NICs have none.
    pub kind: Option<String>,
}

/// One address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the link it is on.
    pub link_index: u32,
    /// The address.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

/// The default route's next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's address.
    pub address: IpAddr,
    /// The link the route leaves through (needed to reach an IPv6 link-local gateway).
    pub link_index: Option<u32>,
}

/// Links, addresses and the default gateway of this network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Every link, by index.
    pub links: Vec<Link>,
    /// Every address.
    pub addresses: Vec<Address>,
    /// The default route's gateway, IPv4 preferred, when there is one.
    pub gateway: Option<Gateway>,
}

/// A netlink route connection in the namespace the process runs in.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket; must be called inside a tokio runtime (the connection task is spawned).
    pub fn connect() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Every link, sorted by index.
    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list links"))?;
        let mut links: Vec<Link> = messages.iter().map(link_from).collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// Every address, as summaries.
    pub async fn addresses(&self) -> Result<Vec<Address>, NetError> {
        Ok(self
            .address_messages()
            .await?
            .iter()
            .filter_map(address_from)
            .collect())
    }

    /// Links, addresses and the default gateway.
    pub async fn host_state(&self) -> Result<HostState, NetError> {
        Ok(HostState {
            links: self.links().await?,
            addresses: self.addresses().await?,
            gateway: default_gateway(&self.routes().await?),
        })
    }

    /// Sets a link's admin state and/or promiscuous mode in one request.
    pub async fn set_link(
        &self,
        link: &Link,
        up: Option<bool>,
        promisc: Option<bool>,
    ) -> Result<(), rtnetlink::Error> {
        let mut builder = LinkUnspec::new_with_index(link.index);
        builder = match up {
            Some(true) => builder.up(),
            Some(false) => builder.down(),
            None => builder,
        };
        if let Some(on) = promisc {
            builder = builder.promiscuous(on);
        }
        self.handle.link().set(builder.build()).execute().await
    }

    pub(crate) async fn address_messages(&self) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list addresses"))
    }

    /// IPv4 and IPv6 routes of every table.
    pub(crate) async fn routes(&self) -> Result<Vec<RouteMessage>, NetError> {
        let mut routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<std::net::Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list IPv4 routes"))?;
        let v6: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<std::net::Ipv6Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list IPv6 routes"))?;
        routes.extend(v6);
        Ok(routes)
    }

    /// Re-adds an address exactly as it was dumped (`address` is that message's summary).
    pub(crate) async fn add_address(
        &self,
        address: &Address,
        message: AddressMessage,
    ) -> Result<(), rtnetlink::Error> {
        let mut request =
            self.handle
                .address()
                .add(address.link_index, address.address, address.prefix_len);
        // The dumped message keeps what the summary drops: flags, label, lifetimes, metric.
        *request.message_mut() = message;
        request.execute().await
    }

    /// Re-adds a route exactly as it was dumped.
    pub(crate) async fn add_route(&self, message: RouteMessage) -> Result<(), rtnetlink::Error> {
        self.handle.route().add(message).execute().await
    }
}

fn link_from(message: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut oper_state = State::Unknown;
    let mut kind = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::OperState(s) => oper_state = *s,
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    Link {
        index: message.header.index,
        name,
        admin_up: message.header.flags.contains(LinkFlags::Up),
        oper_state: oper_state_name(oper_state),
        promisc: message.header.flags.contains(LinkFlags::Promisc),
        kind,
    }
}

fn oper_state_name(state: State) -> String {
    match state {
        State::Unknown => "unknown".into(),
        State::NotPresent => "notpresent".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Testing => "testing".into(),
        State::Dormant => "dormant".into(),
        State::Up => "up".into(),
        State::Other(n) => format!("state-{n}"),
        _ => "unknown".into(),
    }
}

pub(crate) fn address_from(message: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links, so prefer the former when both are present.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    Some(Address {
        link_index: message.header.index,
        address,
        prefix_len: message.header.prefix_len,
    })
}

pub(crate) fn address_is_permanent(message: &AddressMessage) -> bool {
    message.header.flags.contains(AddressHeaderFlags::Permanent)
}

pub(crate) fn default_gateway(routes: &[RouteMessage]) -> Option<Gateway> {
    let mut candidates: Vec<(bool, u32, Gateway)> = routes
        .iter()
        .filter(|r| {
            r.header.destination_prefix_length == 0
                && r.header.kind == RouteType::Unicast
                && route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
        })
        .filter_map(|r| {
            let mut gateway = None;
            let mut oif = None;
            let mut priority = 0;
            for attribute in &r.attributes {
                match attribute {
                    RouteAttribute::Gateway(a) => gateway = route_ip(a),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Priority(p) => priority = *p,
                    RouteAttribute::MultiPath(hops) if gateway.is_none() => {
                        if let Some(hop) = hops.first() {
                            oif = Some(hop.interface_index);
                            gateway = hop.attributes.iter().find_map(|a| match a {
                                RouteAttribute::Gateway(a) => route_ip(a),
                                _ => None,
                            });
                        }
                    }
                    _ => {}
                }
            }
            let address = gateway?;
            Some((
                address.is_ipv6(),
                priority,
                Gateway {
                    address,
                    link_index: oif,
                },
            ))
        })
        .collect();
    // IPv4 first, then the lowest metric: the route the kernel would pick for IPv4 traffic.
    candidates.sort_by_key(|(v6, priority, _)| (*v6, *priority));
    candidates.first().map(|(_, _, g)| *g)
}

pub(crate) fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The full table id (RTA_TABLE carries ids above 255; the header only the low byte).
pub(crate) fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.links.iter().map(|l| l.name.len()).max().unwrap_or(0);
        for link in &self.links {
            let addresses: Vec<String> = self
                .addresses
                .iter()
                .filter(|a| a.link_index == link.index)
                .map(|a| format!("{}/{}", a.address, a.prefix_len))
                .collect();
            writeln!(
                f,
                "{:>3} {:<width$} {:<4} oper={:<14} promisc={:<3} kind={:<8} {}",
                link.index,
                link.name,
                if link.admin_up { "UP" } else { "DOWN" },
                link.oper_state,
                if link.promisc { "on" } else { "off" },
                link.kind.as_deref().unwrap_or("-"),
                addresses.join(" "),
            )?;
        }
        match &self.gateway {
            Some(g) => {
                let via = g
                    .link_index
                    .and_then(|i| self.links.iter().find(|l| l.index == i))
                    .map(|l| format!(" dev {}", l.name))
                    .unwrap_or_default();
                write!(f, "default gateway: {}{via}", g.address)
            }
            None => write!(f, "default gateway: none"),
        }
    }
}
