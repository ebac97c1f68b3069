//! GeoIP enrichment end to end: MaxMind-format databases made by the test (support/mmdb.rs),
//! the rendered `vector.toml` declaring them as Vector `geoip` tables, and the rendered ECS
//! program run by the real VRL runtime through `Mapper`, whose `get_enrichment_table_record`
//! is our implementation of Vector's function over the same databases; and the real Vector's
//! `geoip` tables over those databases, which must join the same fields.

#[path = "support/mmdb.rs"]
mod mmdb;
#[path = "support/vector.rs"]
mod real_vector;
#[path = "support/rendered.rs"]
mod rendered;

use std::net::IpAddr;
use std::path::Path;

use ids2_agent::config::{self, Settings};
use ids2_agent::ecs::{fields::emitted_fields, Mapper};
use ids2_agent::render;
use mmdb::{Data, Writer};

fn city_db() -> Vec<u8> {
    let mut w = Writer::new("GeoLite2-City");
    let london = Data::Map(vec![
        (
            "city",
            Data::Map(vec![(
                "names",
                Data::Map(vec![("en", Data::Str("London"))]),
            )]),
        ),
        (
            "continent",
            Data::Map(vec![
                ("code", Data::Str("EU")),
                ("names", Data::Map(vec![("en", Data::Str("Europe"))])),
            ]),
        ),
        (
            "country",
            Data::Map(vec![
                ("iso_code", Data::Str("GB")),
                (
                    "names",
                    Data::Map(vec![("en", Data::Str("United Kingdom"))]),
                ),
            ]),
        ),
        (
            "location",
            Data::Map(vec![
                ("latitude", Data::F64(51.5142)),
                ("longitude", Data::F64(-0.0931)),
                ("time_zone", Data::Str("Europe/London")),
            ]),
        ),
        ("postal", Data::Map(vec![("code", Data::Str("EC2V"))])),
        (
            "subdivisions",
            Data::Arr(vec![Data::Map(vec![
                ("iso_code", Data::Str("ENG")),
                ("names", Data::Map(vec![("en", Data::Str("England"))])),
            ])]),
        ),
    ]);
    w.insert("81.2.69.0".parse().unwrap(), 24, &london);
    // Country-level data only (no city, no location): only what exists is emitted.
    let de = Data::Map(vec![(
        "country",
        Data::Map(vec![
            ("iso_code", Data::Str("DE")),
            ("names", Data::Map(vec![("en", Data::Str("Germany"))])),
        ]),
    )]);
    w.insert("2a02:8100::".parse().unwrap(), 32, &de);
    // A record for a private range, as some databases carry: must still never be joined.
    w.insert("10.0.0.0".parse().unwrap(), 8, &de);
    w.finish()
}

fn asn_db() -> Vec<u8> {
    let mut w = Writer::new("GeoLite2-ASN");
    let aaisp = Data::Map(vec![
        ("autonomous_system_number", Data::U32(20712)),
        (
            "autonomous_system_organization",
            Data::Str("Andrews & Arnold Ltd"),
        ),
    ]);
    w.insert("81.2.69.0".parse().unwrap(), 24, &aaisp);
    w.finish()
}

struct Dbs {
    dir: tempfile::TempDir,
}

impl Dbs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("GeoLite2-City.mmdb"), city_db()).unwrap();
        std::fs::write(dir.path().join("GeoLite2-ASN.mmdb"), asn_db()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn settings(enrichment: &str) -> Settings {
    let text = format!(
        "sensor: {{id: lab-1}}\n\
         capture: {{interface: eth1, home_net: [10.0.0.0/8]}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://search.example.org'}}\n\
         {enrichment}"
    );
    config::from_str(&text, Path::new("t.yaml")).unwrap()
}

fn with_dbs(dbs: &Dbs) -> Settings {
    settings(&format!(
        "enrichment: {{geoip_city_path: '{}', geoip_asn_path: '{}'}}\n",
        dbs.path("GeoLite2-City.mmdb"),
        dbs.path("GeoLite2-ASN.mmdb")
    ))
}

fn alert(src: &str, dest: &str) -> String {
    format!(
        r#"{{"timestamp":"2026-11-21T10:00:00.000000+0000","flow_id":1,"event_type":"alert","src_ip":"{src}","src_port":40000,"dest_ip":"{dest}","dest_port":443,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2000001,"rev":1,"signature":"test","category":"Misc","severity":2}}}}"#
    )
}

#[test]
fn public_addresses_get_geo_and_as_private_ones_do_not() {
    let dbs = Dbs::new();
    let mut m = Mapper::new(&with_dbs(&dbs)).unwrap();
    let doc = m.map_line(&alert("10.1.2.3", "81.2.69.142")).unwrap();

    let geo = &doc["destination"]["geo"];
    assert_eq!(geo["city_name"], "London");
    assert_eq!(geo["country_iso_code"], "GB");
    assert_eq!(geo["country_name"], "United Kingdom");
    assert_eq!(geo["continent_code"], "EU");
    assert_eq!(geo["region_name"], "England");
    assert_eq!(geo["region_iso_code"], "GB-ENG");
    assert_eq!(geo["postal_code"], "EC2V");
    assert_eq!(geo["timezone"], "Europe/London");
    assert_eq!(geo["location"]["lat"], 51.5142);
    assert_eq!(geo["location"]["lon"], -0.0931);
    assert_eq!(doc["destination"]["as"]["number"], 20712);
    assert_eq!(
        doc["destination"]["as"]["organization"]["name"],
        "Andrews & Arnold Ltd"
    );
    // 10/8 has a record in the test database, but private addresses are never joined.
    assert!(doc["source"].get("geo").is_none(), "{doc:#}");
    assert!(doc["source"].get("as").is_none(), "{doc:#}");
}

#[test]
fn partial_records_give_only_the_fields_they_have_and_unknown_addresses_none() {
    let dbs = Dbs::new();
    let mut m = Mapper::new(&with_dbs(&dbs)).unwrap();
    let doc = m
        .map_line(&alert("2a02:8100:1::5", "8.8.8.8"))
        .expect("addresses without records are not errors");
    assert_eq!(
        doc["source"]["geo"],
        serde_json::json!({"country_iso_code": "DE", "country_name": "Germany"})
    );
    assert!(doc["source"].get("as").is_none(), "no ASN record: {doc:#}");
    assert!(doc["destination"].get("geo").is_none(), "{doc:#}");
    assert!(doc["destination"].get("as").is_none(), "{doc:#}");
}

#[test]
fn no_database_or_a_missing_file_means_no_fields_and_no_error() {
    let line = alert("10.1.2.3", "81.2.69.142");
    let none = Mapper::new(&settings("")).unwrap().map_line(&line).unwrap();
    let missing = settings(
        "enrichment: {geoip_city_path: /nonexistent/GeoLite2-City.mmdb, \
         geoip_asn_path: /nonexistent/GeoLite2-ASN.mmdb}\n",
    );
    let program = render::ecs_program(&missing).unwrap();
    assert!(
        !program.contains("get_enrichment_table_record"),
        "a missing database is not joined (Vector would refuse to start on it)"
    );
    let toml = rendered::vector_toml_text(&missing);
    assert!(!toml.contains("enrichment_tables"), "{toml}");
    let doc = Mapper::new(&missing).unwrap().map_line(&line).unwrap();
    for doc in [none, doc] {
        assert!(doc["destination"].get("geo").is_none(), "{doc:#}");
        assert!(doc["destination"].get("as").is_none(), "{doc:#}");
        assert_eq!(doc["destination"]["ip"], "81.2.69.142");
    }
}

#[test]
fn a_database_of_another_kind_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    std::fs::write(&path, Writer::new("GeoLite2-Country").finish()).unwrap();
    let s = settings(&format!(
        "enrichment: {{geoip_city_path: '{}'}}\n",
        path.display()
    ));
    let err = Mapper::new(&s)
        .err()
        .expect("a Country database is not a City one");
    let msg = format!("{err}");
    assert!(msg.contains("GeoLite2-Country"), "{msg}");
}

#[test]
fn vector_toml_declares_the_geoip_tables_only_when_present() {
    let dbs = Dbs::new();
    let s = with_dbs(&dbs);
    let text = rendered::vector_toml_text(&s);
    real_vector::validate("GeoIP enrichment", &text);
    let doc: toml::Table = text.parse().expect("vector.toml is TOML");
    let tables = doc["enrichment_tables"].as_table().unwrap();
    assert_eq!(tables["geoip_city"]["type"].as_str(), Some("geoip"));
    assert_eq!(
        tables["geoip_city"]["path"].as_str(),
        Some(dbs.path("GeoLite2-City.mmdb").as_str())
    );
    assert_eq!(
        tables["geoip_asn"]["path"].as_str(),
        Some(dbs.path("GeoLite2-ASN.mmdb").as_str())
    );
    assert!(!tables.contains_key("ids2_reputation"));
    let source = doc["transforms"]["ecs_protocols"]["source"]
        .as_str()
        .unwrap();
    assert!(source.contains(r#"get_enrichment_table_record("geoip_city""#));
    assert!(source.contains(r#"get_enrichment_table_record("geoip_asn""#));
    // Only the enrichment parts: the rest of vector.toml and of the program has its own
    // snapshots.
    let dir = dbs.dir.path().display().to_string();
    insta::with_settings!({ filters => vec![(dir.as_str(), "[dbs]")] }, {
        insta::assert_snapshot!("vector_toml_geoip_tables", between(&text, "[enrichment_tables", "[sources.eve]"));
        insta::assert_snapshot!("ecs_program_geoip_joins", between(source, "# Enrichment (templates/enrich", "\u{0}"));
    });
}

/// The real Vector's `geoip` tables, over the same databases, join what `Mapper`'s own
/// `get_enrichment_table_record` joins: the rendered tables and remaps run by Vector (stdin in,
/// JSON out), compared field by field with the mapper's documents, for full, partial, missing
/// and private records, IPv4 and IPv6.
#[test]
fn the_real_vector_joins_what_the_mapper_joins() {
    let dbs = Dbs::new();
    let s = with_dbs(&dbs);
    let text = rendered::vector_toml_text(&s);
    let lines = [
        alert("10.1.2.3", "81.2.69.142"),
        alert("2a02:8100:1::5", "8.8.8.8"),
        alert("81.2.69.142", "2a02:8100:1::5"),
    ];
    let Some(docs) = real_vector::run_mapping(&text, &lines) else {
        return;
    };
    let mut m = Mapper::new(&s).unwrap();
    let mut joined = 0;
    for line in &lines {
        let want = m.map_line(line).unwrap();
        let doc = real_vector::same_event(&docs, &want);
        for side in ["source", "destination"] {
            for part in ["geo", "as"] {
                let got = doc[side].get(part);
                assert_eq!(got, want[side].get(part), "{side}.{part} of {line}");
                joined += usize::from(got.is_some());
            }
        }
    }
    assert_eq!(joined, 6, "{docs:#?}");
}

/// The text from the first `start` to `end` (or to the end).
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect("start marker");
    let rest = &text[from..];
    rest.find(end).map_or(rest, |to| &rest[..to])
}

#[test]
fn enriched_fields_are_listed_for_the_index_templates() {
    let dbs = Dbs::new();
    let mut m = Mapper::new(&with_dbs(&dbs)).unwrap();
    let listed: Vec<&str> = emitted_fields().iter().map(|f| f.name).collect();
    for line in [
        alert("81.2.69.142", "2a02:8100::1"),
        alert("2a02:8100::1", "81.2.69.142"),
    ] {
        let doc = m.map_line(&line).unwrap();
        for name in rendered::ecs_leaf_names(&doc) {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is emitted but not in templates/ecs_fields.tsv"
            );
        }
    }
    let ip: IpAddr = "81.2.69.142".parse().unwrap();
    assert!(render::is_public(ip));
}
