//! Runs the ECS program on EVE lines with the `vrl` crate, the way Vector's two remap
//! transforms run it: each part is compiled once on its own (so the second cannot use what
//! the first left in variables), each line arrives as the file source's `message`, the second
//! part maps what the first made, and the runtime state is cleared between events.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{Context, Program, TargetValue, TimeZone};
use vrl::diagnostic::Formatter;
use vrl::value::{Secrets, Value};

use super::program::{ecs_program, ecs_program_for, split_program, ProgramVars};
use super::EcsError;
use crate::config::Settings;
use crate::enrich::{GetEnrichmentTableRecord, Tables};

/// A compiled ECS program, ready to map one EVE line after another.
pub struct Mapper {
    program: Program,
    /// The protocol sections (`ecs_protocols` in `vector.toml`), when the program has them.
    protocols: Option<Program>,
    state: RuntimeState,
    timezone: TimeZone,
}

impl Mapper {
    /// Compiles the program rendered for these settings, with the enrichment tables its
    /// `vector.toml` declares (GeoIP databases, the reputation table) loaded as Vector loads them.
    pub fn new(settings: &Settings) -> Result<Self, EcsError> {
        let tables = Tables::from_settings(settings)?;
        Self::with_tables(&ecs_program(settings)?, tables)
    }

    /// Compiles the shipped template rendered with explicit variables (sensor identity).
    pub fn from_vars(vars: &ProgramVars) -> Result<Self, EcsError> {
        Self::from_source(&ecs_program_for(vars)?)
    }

    /// Compiles VRL source with Vector's standard library functions.
    pub fn from_source(source: &str) -> Result<Self, EcsError> {
        Self::with_tables(source, Tables::new())
    }

    /// Compiles VRL source with the standard library and `get_enrichment_table_record` over
    /// these tables (our implementation of Vector's function). A source with the protocol
    /// sections' marker line compiles as the two programs `vector.toml` runs; the second must
    /// not be able to fail, or Vector would copy every whole ECS document for it.
    pub fn with_tables(source: &str, tables: Tables) -> Result<Self, EcsError> {
        let mut functions = vrl::stdlib::all();
        functions.push(Box::new(GetEnrichmentTableRecord::new(Arc::new(tables))));
        let compile = |part: &str| {
            vrl::compiler::compile(part, &functions)
                .map(|compiled| compiled.program)
                .map_err(|diagnostics| EcsError::Compile {
                    diagnostics: Formatter::new(part, diagnostics).to_string(),
                })
        };
        let (core, protocols) = split_program(source);
        let protocols = if protocols.is_empty() {
            None
        } else {
            let program = compile(protocols)?;
            let info = program.info();
            if info.fallible || info.abortable {
                return Err(EcsError::Compile {
                    diagnostics: "the protocol sections (the second remap, ecs_protocols) can \
                                  fail or abort: handle each error where it arises instead of \
                                  with `!` or abort"
                        .into(),
                });
            }
            Some(program)
        };
        Ok(Self {
            program: compile(core)?,
            protocols,
            state: RuntimeState::default(),
            timezone: TimeZone::default(),
        })
    }

    /// Maps one EVE line to its ECS document as a VRL value (what Vector hands its sinks).
    pub fn map_value(&mut self, line: &str) -> Result<Value, EcsError> {
        let mut event = BTreeMap::new();
        event.insert(
            "message".into(),
            Value::Bytes(Bytes::copy_from_slice(line.as_bytes())),
        );
        let mut target = TargetValue {
            value: Value::Object(event),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let result = {
            let mut ctx = Context::new(&mut target, &mut self.state, &self.timezone);
            self.program.resolve(&mut ctx)
        };
        self.state.clear();
        result.map_err(|e| EcsError::InvalidEvent {
            reason: e.to_string(),
        })?;
        if let Some(protocols) = &self.protocols {
            let mut ctx = Context::new(&mut target, &mut self.state, &self.timezone);
            // Compiled infallible (checked in with_tables): it cannot return an error.
            let _ = protocols.resolve(&mut ctx);
            self.state.clear();
        }
        Ok(target.value)
    }

    /// Maps one EVE line to its ECS document as JSON.
    pub fn map_line(&mut self, line: &str) -> Result<serde_json::Value, EcsError> {
        let value = self.map_value(line)?;
        serde_json::to_value(&value).map_err(|e| EcsError::Output {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper() -> Mapper {
        let settings = crate::config::from_str(
            "sensor: {id: lab-1, name: Lab one}\n\
             capture: {interface: eth1, home_net: [10.0.0.0/8]}\n\
             opensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .expect("valid config");
        Mapper::new(&settings).expect("the shipped program compiles")
    }

    const ALERT: &str = r#"{"timestamp":"2018-07-05T15:07:20.910626-0400","flow_id":904992230150281,"event_type":"alert","src_ip":"10.1.2.3","src_port":55641,"dest_ip":"192.0.2.70","dest_port":443,"proto":"TCP","tx_id":0,"alert":{"action":"allowed","gid":1,"signature_id":2024833,"rev":3,"signature":"ET POLICY l2.io","category":"Potential Corporate Privacy Violation","severity":1},"tls":{"sni":"l2.io","version":"TLS 1.2"},"app_proto":"tls","flow":{"pkts_toserver":4,"pkts_toclient":3,"bytes_toserver":793,"bytes_toclient":343,"start":"2018-07-05T15:07:19.659593-0400"}}"#;

    #[test]
    fn alert_fields_move_to_ecs_and_the_rest_stays_under_suricata_eve() {
        let doc = mapper().map_line(ALERT).unwrap();
        assert_eq!(doc["@timestamp"], "2018-07-05T19:07:20.910626Z");
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["dataset"], "suricata.alert");
        assert_eq!(doc["event"]["type"], serde_json::json!(["allowed"]));
        assert_eq!(doc["event"]["severity"], 1);
        assert_eq!(doc["rule"]["id"], "2024833");
        assert_eq!(doc["source"]["ip"], "10.1.2.3");
        assert_eq!(doc["destination"]["bytes"], 343);
        assert_eq!(doc["network"]["bytes"], 1136);
        assert_eq!(doc["network"]["transport"], "tcp");
        assert_eq!(doc["network"]["protocol"], "tls");
        assert_eq!(doc["network"]["direction"], "outbound", "10/8 is HOME_NET");
        assert_eq!(doc["tls"]["client"]["server_name"], "l2.io");
        assert_eq!(doc["observer"]["hostname"], "lab-1");
        assert_eq!(doc["observer"]["name"], "Lab one");
        assert_eq!(doc["observer"]["ingress"]["interface"]["name"], "eth1");
        let eve = &doc["suricata"]["eve"];
        assert_eq!(eve["flow_id"], 904992230150281_i64, "unmapped EVE stays");
        assert_eq!(eve["alert"]["gid"], 1);
        assert!(
            eve.get("src_ip").is_none(),
            "mapped fields are moved, not copied"
        );
        assert!(eve["alert"].get("signature").is_none());
        assert!(
            doc["event"].get("original").is_none(),
            "event.original is not kept"
        );
    }

    #[test]
    fn ids_depend_on_sensor_and_event_only() {
        let mut m = mapper();
        let a = m.map_line(ALERT).unwrap()["event"]["id"].clone();
        assert_eq!(a, m.map_line(ALERT).unwrap()["event"]["id"]);
        let other = ALERT.replace("2024833", "2024834");
        assert_ne!(a, m.map_line(&other).unwrap()["event"]["id"]);
    }

    #[test]
    fn dns_v3_queries_and_answers_map() {
        let line = r#"{"timestamp":"2024-01-01T00:00:00.000000+0000","flow_id":1,"event_type":"dns","src_ip":"10.0.0.53","src_port":53,"dest_ip":"10.0.0.2","dest_port":40000,"proto":"UDP","dns":{"version":3,"type":"response","id":7,"rd":true,"ra":true,"rcode":"NOERROR","queries":[{"rrname":"www.example.co.uk","rrtype":"A"}],"answers":[{"rrname":"www.example.co.uk","rrtype":"A","ttl":60,"rdata":"192.0.2.1"}]}}"#;
        let doc = mapper().map_line(line).unwrap();
        let dns = &doc["dns"];
        assert_eq!(dns["type"], "answer");
        assert_eq!(dns["id"], "7");
        assert_eq!(dns["question"]["name"], "www.example.co.uk");
        assert_eq!(dns["question"]["registered_domain"], "example.co.uk");
        assert_eq!(dns["question"]["top_level_domain"], "co.uk");
        assert_eq!(dns["question"]["subdomain"], "www");
        assert_eq!(dns["header_flags"], serde_json::json!(["RD", "RA"]));
        assert_eq!(dns["answers"][0]["data"], "192.0.2.1");
        assert_eq!(dns["resolved_ip"], serde_json::json!(["192.0.2.1"]));
        assert_eq!(doc["network"]["direction"], "internal");
    }

    #[test]
    fn tls_and_quic_fingerprints_map_to_the_same_fields() {
        // Lines as Suricata 7 writes them with our config (ja3/ja4-fingerprints on).
        let tls = r#"{"timestamp":"2018-09-23T18:44:31.177659+0000","flow_id":2,"event_type":"tls","src_ip":"10.0.0.253","src_port":49584,"dest_ip":"151.101.36.133","dest_port":443,"proto":"TCP","tls":{"sni":"raw.githubusercontent.com","version":"TLS 1.2","ja3":{"hash":"316193effb467e51d0301cabd36b69e0","string":"771,49196,0-11,29-23,0"},"ja3s":{"hash":"098e26e2609212ac1bfac552fbe04127","string":"771,49199,65281-0"},"ja4":"t12d620800_106a9de34958_ce8ec278e0aa"}}"#;
        let quic = r#"{"timestamp":"2023-10-01T12:44:50.725257+0000","flow_id":3,"event_type":"quic","src_ip":"10.0.0.25","src_port":51333,"dest_ip":"142.250.181.201","dest_port":443,"proto":"UDP","app_proto":"quic","quic":{"version":"1","sni":"www.blogger.com","ja3":{"hash":"248373eb19ca203170946b3085bd09ae","string":"771,4865,17513-27,29-23-24,"},"ja4":"q13d0310h3_55b375c5d22e_cd85d2d88918"}}"#;
        let mut m = mapper();
        let doc = m.map_line(tls).unwrap();
        assert_eq!(
            doc["tls"]["client"]["ja3"],
            "316193effb467e51d0301cabd36b69e0"
        );
        assert_eq!(
            doc["tls"]["server"]["ja3s"],
            "098e26e2609212ac1bfac552fbe04127"
        );
        assert_eq!(
            doc["related"]["hash"],
            serde_json::json!([
                "316193effb467e51d0301cabd36b69e0",
                "098e26e2609212ac1bfac552fbe04127"
            ])
        );
        // ECS has no JA4 field: it stays where Suricata put it, with the JA3 strings.
        let eve = &doc["suricata"]["eve"]["tls"];
        assert_eq!(eve["ja4"], "t12d620800_106a9de34958_ce8ec278e0aa");
        assert_eq!(
            eve["ja3"],
            serde_json::json!({"string": "771,49196,0-11,29-23,0"})
        );

        let doc = m.map_line(quic).unwrap();
        assert_eq!(doc["network"]["protocol"], "quic");
        assert_eq!(doc["tls"]["client"]["server_name"], "www.blogger.com");
        assert_eq!(doc["destination"]["domain"], "www.blogger.com");
        assert_eq!(
            doc["tls"]["client"]["ja3"],
            "248373eb19ca203170946b3085bd09ae"
        );
        assert_eq!(
            doc["related"]["hosts"],
            serde_json::json!(["www.blogger.com"])
        );
        assert_eq!(
            doc["related"]["hash"],
            serde_json::json!(["248373eb19ca203170946b3085bd09ae"])
        );
        assert_eq!(doc["suricata"]["eve"]["quic"]["version"], "1");
    }

    #[test]
    fn certificate_dns_split_into_x509_parts() {
        // Suricata joins a DN's parts with ", " and does not escape a comma in a value.
        let tls = r#"{"timestamp":"2018-09-23T18:44:31.177659+0000","flow_id":2,"event_type":"tls","src_ip":"10.0.0.253","src_port":49584,"dest_ip":"140.82.121.4","dest_port":443,"proto":"TCP","tls":{"subject":"C=US, ST=California, L=San Francisco, O=GitHub, Inc., CN=github.com","issuerdn":"C=US, O=DigiCert Inc, OU=www.digicert.com, OU=Servers, CN=DigiCert SHA2 High Assurance Server CA","version":"TLS 1.2"}}"#;
        let doc = mapper().map_line(tls).unwrap();
        let x509 = &doc["tls"]["server"]["x509"];
        assert_eq!(
            x509["subject"],
            serde_json::json!({
                "country": ["US"], "state_or_province": ["California"],
                "locality": ["San Francisco"], "organization": ["GitHub, Inc."],
                "common_name": ["github.com"],
            })
        );
        assert_eq!(
            x509["issuer"],
            serde_json::json!({
                "country": ["US"], "organization": ["DigiCert Inc"],
                "organizational_unit": ["www.digicert.com", "Servers"],
                "common_name": ["DigiCert SHA2 High Assurance Server CA"],
            })
        );
        // The whole DNs stay searchable as Suricata wrote them.
        assert_eq!(
            doc["tls"]["server"]["subject"],
            "C=US, ST=California, L=San Francisco, O=GitHub, Inc., CN=github.com"
        );
    }

    #[test]
    fn smb_session_ids_are_exact_strings_even_past_2_pow_63() {
        let mut m = mapper();
        for id in [
            "39582485708869",
            "11200975000855117829",
            "18446744073709551615",
        ] {
            let line = format!(
                r#"{{"timestamp":"2022-02-25T16:33:46.356103+0000","flow_id":5,"event_type":"fileinfo","src_ip":"10.0.0.1","src_port":445,"dest_ip":"10.0.0.2","dest_port":49674,"proto":"TCP","smb":{{"id":2,"dialect":"3.11","command":"SMB2_COMMAND_READ","status":"STATUS_SUCCESS","session_id":{id},"tree_id":5}},"fileinfo":{{"filename":"a.txt","size":3}}}}"#
            );
            let doc = m.map_line(&line).unwrap();
            assert_eq!(doc["suricata"]["eve"]["smb"]["session_id"], id, "{doc}");
            assert_eq!(doc["suricata"]["eve"]["smb"]["tree_id"], 5);
        }
    }

    #[test]
    fn lines_that_are_not_eve_are_typed_errors() {
        let mut m = mapper();
        for bad in [
            "not json",
            "[1,2]",
            r#"{"timestamp":"2024-01-01T00:00:00+0000"}"#,
        ] {
            match m.map_line(bad) {
                Err(EcsError::InvalidEvent { reason }) => assert!(!reason.is_empty()),
                other => panic!("{bad}: expected InvalidEvent, got {other:?}"),
            }
        }
        assert!(
            m.map_line(ALERT).is_ok(),
            "a failed line leaves the mapper usable"
        );
    }

    /// A program in two parts the way the shipped one is split.
    fn two_parts(first: &str, second: &str) -> String {
        format!("{first}\n{}\n{second}\n", crate::render::PROTOCOLS_MARKER)
    }

    /// The diagnostics `source` is refused with; panics naming `source` if it is not refused
    /// as a compile error.
    fn compile_error(source: &str) -> String {
        match Mapper::from_source(source) {
            Err(EcsError::Compile { diagnostics }) => diagnostics,
            Err(e) => panic!("{source}: expected Compile, got {e:?}"),
            Ok(_) => panic!("{source}: expected Compile, got a mapper"),
        }
    }

    #[test]
    fn the_second_part_maps_what_the_first_made_and_sees_none_of_its_variables() {
        let mut m = Mapper::from_source(&two_parts(
            ".first = string!(.message)",
            ".second = upcase(string(.first) ?? \"\")",
        ))
        .expect("two parts compile");
        let doc = m.map_line("abc").unwrap();
        assert_eq!(doc["first"], "abc");
        assert_eq!(doc["second"], "ABC");
        // As in Vector, where each part is its own remap transform.
        let diagnostics = compile_error(&two_parts("v = 1", ".x = v"));
        assert!(diagnostics.contains("undefined variable"), "{diagnostics}");
    }

    #[test]
    fn a_second_part_that_can_fail_is_refused() {
        // Vector would copy every whole document to forward it if the second remap failed.
        for second in [".x = string!(.y)", "abort"] {
            let diagnostics = compile_error(&two_parts(".a = 1", second));
            assert!(diagnostics.contains("ecs_protocols"), "{diagnostics}");
        }
    }

    #[test]
    fn a_program_that_does_not_compile_is_a_compile_error() {
        assert!(compile_error(".a = nope(").contains("error"));
    }
}
