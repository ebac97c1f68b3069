//! Fuzz target: the config parser and validator. Any bytes — raw, or the example config and
//! the minimal one mutated with YAML's own syntax (anchors, tags, merge keys, deep nesting,
//! flow collections) and hostile bytes — give settings or a list of problems, never a panic;
//! every refusal is bad input (exit 2 at the CLI); and a config that validates serialises back
//! to YAML that validates again.

#[path = "support/fuzz.rs"]
mod fuzz;

use std::path::Path;
use std::time::{Duration, Instant};

use ids2_core::config::{self, ConfigError};

const MINIMAL: &[u8] = b"sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n";
const EXAMPLE: &[u8] = include_bytes!("../../agent/config.example.yaml");

/// YAML syntax and the config's own vocabulary.
const DICT: &[&[u8]] = &[
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b", ",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!binary ",
    b"!!str ",
    b"!!int ",
    b"!!float ",
    b"!custom ",
    b"? ",
    b"|\n  ",
    b">-\n  ",
    b"---\n",
    b"...\n",
    b"~",
    b"null",
    b"true",
    b"0x7fffffffffffffff",
    b"-1",
    b"1e999",
    b".nan",
    b"99999999999999999999999",
    b"'",
    b"#",
    b"%YAML 1.1\n",
    b"\n  ",
    b"\n    ",
    b"@",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{a: {a: {a: {a: {a: {a: {a: {a: ",
    b"sensor",
    b"capture",
    b"home_net",
    b"0.0.0.0/0",
    b"::/0",
    b"10.0.0.0/33",
    b"metrics",
    b"listen",
    b"0.0.0.0:0",
    b"[::1]:65536",
    b"notifications",
    b"webhook",
    b"blocking",
    b"enabled: true",
    b"password: hunter2",
    b"url_file",
    b"cpu_cores",
    b"workers",
    b"management_targets",
    b"allowlist",
    b"opensearch",
    b"endpoint: http://x",
];

/// The config loader's promise for any input.
fn check(bytes: &[u8]) {
    match config::from_bytes(bytes, Path::new("fuzz.yaml")) {
        Ok(settings) => {
            let yaml = config::to_yaml(&settings.config);
            if let Err(e) = config::from_str(&yaml, Path::new("again.yaml")) {
                panic!(
                    "a valid config did not survive its own serialisation:\n{e}\n--- input\n{}\n--- serialised\n{yaml}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        Err(e) => {
            assert!(
                e.is_bad_input(),
                "refusal that is not bad input (exit 1, not 2): {e}"
            );
            match &e {
                ConfigError::Read { .. } => panic!("no file was read: {e}"),
                ConfigError::Invalid { problems, .. } => {
                    assert!(!problems.is_empty(), "invalid with no problem named");
                    for p in problems {
                        assert!(!p.message.is_empty(), "problem without a message: {p:?}");
                    }
                }
                ConfigError::Syntax { .. } | ConfigError::Encoding { .. } => {}
            }
            // Rendering the message must not panic either (it is what the operator reads).
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn fuzz_config_any_bytes() {
    fuzz::fuzz("config", Duration::from_secs(8), |u| {
        let bytes = match u.int_in_range(0..=5)? {
            0 => u.bytes(u.len())?.to_vec(),
            1 => fuzz::mutate(u, MINIMAL, DICT)?,
            _ => fuzz::mutate(u, EXAMPLE, DICT)?,
        };
        check(&bytes);
        Ok(())
    });
}

/// Regression seeds, checked every run: shapes that break YAML loaders (deep nesting kept this
/// one busy for 90 s until `MAX_FLOW_DEPTH`; alias expansion; byte-order marks; tags), each
/// refused in well under two seconds.
#[test]
fn hostile_shapes_are_refused_cleanly() {
    let deep = format!("sensor: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let laughs = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n\
                  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
                  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
                  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n\
                  sensor: *h\n";
    for input in [
        deep.as_bytes(),
        laughs.as_bytes(),
        b"\xff\xfe".as_slice(),
        b"sensor: {id: \"lab\0one\"}\n".as_slice(),
        b"\xef\xbb\xbfsensor: {id: lab-1}\n".as_slice(),
        b"sensor: !!binary aGVsbG8=\n".as_slice(),
        b"<<: *nope\n".as_slice(),
        b"".as_slice(),
    ] {
        let started = Instant::now();
        check(input);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?} took {:?}",
            String::from_utf8_lossy(&input[..input.len().min(40)]),
            started.elapsed()
        );
        assert!(
            config::from_bytes(input, Path::new("x.yaml")).is_err(),
            "{:?} was accepted",
            String::from_utf8_lossy(&input[..input.len().min(80)])
        );
    }
}
