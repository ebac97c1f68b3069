//! Packet evidence (config `evidence`): Suricata's `pcap-log` writes every packet into a short
//! ring ([`ring`]); on each alert the agent copies that flow's packets, both directions and from
//! the flow's first packet, out of the ring into a per-flow pcap kept on persistent storage.
//! The pcap format is read and written by hand ([`pcap`]): no libpcap on the sensor.

pub mod pcap;
pub mod ring;
