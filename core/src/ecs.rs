//! The list of ECS fields the sensor's mapping (`templates/ecs.vrl.tera`) can emit, shared
//! with `ids2-provision` so the index templates and the mapping cannot drift apart.

/// The ECS `tags` value of an alert whose flow's packets the sensor keeps; with the alert's
/// `network.community_id` it is what `ids2-agent pcap get --community-id` needs.
pub const EVIDENCE_TAG: &str = "ids2-pcap-evidence";

/// The longest EVE line that becomes a document: Vector's file source (`max_line_bytes` in the
/// rendered `vector.toml`) and the agent's EVE reader both skip a longer one, which the agent
/// counts (`ids2_eve_events_total{event_type="oversized"}`, the heartbeat's
/// `ids2.eve.oversized_lines`). Suricata bounds no line: an alert carrying app-layer metadata
/// can be megabytes (the corpus has a 2.4 MB DNP3 alert, 65,537 objects), and traffic decides
/// how long. Vector holds such a line as a tree of values, 40–80 bytes of RAM per byte of
/// dense JSON while it is in flight (`bench/vector-ecs.py --long-lines`: peak RSS 71 MB with an
/// ordinary alert, 156 MB with the DNP3 alert, 240 MB with a 4 MiB line like it, through the
/// ECS remaps alone; 240 and 371 MB for the last two through the whole pipeline), so the cap
/// bounds what one crafted line can cost a 2–8 GB Pi; 4 MiB ships that alert with room. A
/// document is its line plus a few hundred bytes of ECS fields, well under the 10 MiB request
/// body the smallest AWS OpenSearch instance types accept (Vector sends one larger than a batch
/// on its own).
pub const EVE_MAX_LINE_BYTES: usize = 4 << 20;

/// `event.dataset` of a line the ECS program could not map (not JSON, cut short, no event type,
/// an unreadable timestamp): `vector.toml`'s `ecs_unmapped` ships it whole under this dataset,
/// so to `<prefix>-suricata.unmapped-*`, where `ids2-provision fleet health` looks for it.
pub const UNMAPPED_DATASET: &str = "suricata.unmapped";

/// The list as shipped: `templates/ecs_fields.tsv`.
pub const FIELDS_TSV: &str = include_str!("../../templates/ecs_fields.tsv");

/// One emitted field and its ECS type (`keyword`, `ip`, `long`, `date`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsField {
    /// Dotted field name, e.g. `source.ip`.
    pub name: &'static str,
    /// ECS data type from the ECS reference.
    pub ecs_type: &'static str,
}

/// Every field the mapping can emit outside `suricata.*`, in file order.
pub fn emitted_fields() -> Vec<EcsField> {
    FIELDS_TSV
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, ecs_type) = l.split_once('\t')?;
            Some(EcsField {
                name: name.trim(),
                ecs_type: ecs_type.trim(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_parses_and_names_are_unique() {
        let data_lines = FIELDS_TSV
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        let fields = emitted_fields();
        assert_eq!(fields.len(), data_lines, "a line without a tab separator");
        let mut names: Vec<_> = fields.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), fields.len(), "duplicate field names");
    }
}
