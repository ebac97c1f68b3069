//! `sensor config`: a sensor `config.yaml` built from the agent's own config types and
//! validated by the agent's own loader before it is written, so it passes
//! `ids2-agent check-config` by construction.

use std::io::Write;
use std::path::{Path, PathBuf};

use ids2_core::config::{self, Auth, Capture, Config, ConfigError, OpenSearch, Sensor};

use crate::endpoint::Endpoint;

/// How the sensor authenticates to OpenSearch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensorAuth {
    /// SigV4 from a shared credentials file on the sensor.
    SigV4 {
        /// Profile in the file.
        profile: Option<String>,
        /// The credentials file on the sensor.
        credentials_file: Option<String>,
        /// Role to assume.
        role_arn: Option<String>,
    },
    /// Basic auth; the password stays in a file on the sensor.
    Basic {
        /// User name.
        username: String,
        /// Password file on the sensor.
        password_file: String,
    },
}

/// What goes into the sensor's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorOptions {
    /// The domain endpoint.
    pub endpoint: String,
    /// `sensor.id`.
    pub sensor_id: String,
    /// `sensor.name` (defaults to the id).
    pub sensor_name: Option<String>,
    /// Region; read from the endpoint host when absent.
    pub region: Option<String>,
    /// Domain name; read from the endpoint host when absent.
    pub domain: Option<String>,
    /// `opensearch.index_prefix`.
    pub index_prefix: String,
    /// Auth method and its file paths.
    pub auth: SensorAuth,
    /// `capture.interface`, when not the default.
    pub interface: Option<String>,
    /// `capture.home_net`, when not the default.
    pub home_net: Vec<String>,
}

/// Why no config was written.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// Region or domain cannot be read from the endpoint.
    #[error(
        "cannot tell the {what} from the endpoint `{endpoint}` (not a *.es.amazonaws.com \
         domain endpoint): pass --{what}"
    )]
    Missing {
        /// `region` or `domain`.
        what: &'static str,
        /// The endpoint.
        endpoint: String,
    },
    /// Basic auth without its user or password file.
    #[error(
        "--auth basic needs --username and --password-file (the path of the password file on \
         the sensor; the password itself never goes into config.yaml)"
    )]
    BasicIncomplete,
    /// The resulting config is not valid; the agent's problems are listed.
    #[error(
        "the sensor config would be invalid; each key below comes from the option of the same \
         name (e.g. sensor.id from --sensor-id, capture.home_net from --home-net)"
    )]
    Invalid(#[source] ConfigError),
    /// The output exists.
    #[error("{} already exists: pass --force to replace it, or choose another --out", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl SensorError {
    /// True when the operator's arguments are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SensorError::Write { .. })
    }
}

/// Builds the config and validates it with the agent's loader.
pub fn build(o: &SensorOptions) -> Result<Config, SensorError> {
    let parsed = Endpoint::parse(&o.endpoint);
    let from_host = parsed.as_ref().and_then(Endpoint::aws_domain_and_region);
    let missing = |what| SensorError::Missing {
        what,
        endpoint: o.endpoint.clone(),
    };
    let region = o
        .region
        .clone()
        .or_else(|| from_host.as_ref().map(|(_, r)| r.clone()))
        .ok_or_else(|| missing("region"))?;
    let domain = o
        .domain
        .clone()
        .or_else(|| from_host.as_ref().map(|(d, _)| d.clone()))
        .ok_or_else(|| missing("domain"))?;
    let auth = match &o.auth {
        SensorAuth::SigV4 {
            profile,
            credentials_file,
            role_arn,
        } => Auth {
            method: "aws_sigv4".into(),
            profile: profile.clone(),
            credentials_file: credentials_file.clone(),
            role_arn: role_arn.clone(),
            ..Auth::default()
        },
        SensorAuth::Basic {
            username,
            password_file,
        } if username.is_empty() || password_file.is_empty() => {
            return Err(SensorError::BasicIncomplete)
        }
        SensorAuth::Basic {
            username,
            password_file,
        } => Auth {
            method: "basic".into(),
            username: Some(username.clone()),
            password_file: Some(password_file.clone()),
            ..Auth::default()
        },
    };
    let mut capture = Capture::default();
    if let Some(i) = &o.interface {
        capture.interface = i.clone();
    }
    if !o.home_net.is_empty() {
        capture.home_net = o.home_net.clone();
    }
    let config = Config {
        sensor: Sensor {
            id: o.sensor_id.clone(),
            name: o.sensor_name.clone(),
        },
        capture,
        logs: Default::default(),
        suricata: Default::default(),
        resources: Default::default(),
        opensearch: OpenSearch {
            domain,
            region,
            endpoint: Some(parsed.map(|e| e.base).unwrap_or_else(|| o.endpoint.clone())),
            index_prefix: o.index_prefix.clone(),
            auth,
        },
        shipping: Default::default(),
        metrics: Default::default(),
        history: Default::default(),
        network: Default::default(),
        connectivity: Default::default(),
        paths: Default::default(),
        anomaly: Default::default(),
        notifications: Default::default(),
        blocking: Default::default(),
        enrichment: Default::default(),
        intel: Default::default(),
        fleet: Default::default(),
        evidence: Default::default(),
    };
    // Round-trip through the text the agent will read, so what is checked is what is written.
    config::from_str(&render(&config), Path::new("<sensor config>"))
        .map_err(SensorError::Invalid)?;
    Ok(config)
}

/// The file's text: a header and the config as YAML. Unset optional keys and, outside `sensor`
/// and `opensearch`, keys at the agent's defaults are left out: the loader fills them in the
/// same, the file shows what makes this sensor different, and it can be pasted into the NixOS
/// module's `settings`, where a repeated default would override the module's own paths.
pub fn render(config: &Config) -> String {
    let mut value = yaml_value(config);
    drop_nulls(&mut value);
    let defaults: Config =
        serde_yaml_ng::from_str("{sensor: {id: x}, opensearch: {domain: x, region: x}}")
            .expect("the two required sections make a config");
    let defaults = yaml_value(&defaults);
    if let (serde_yaml_ng::Value::Mapping(sections), serde_yaml_ng::Value::Mapping(d)) =
        (&mut value, &defaults)
    {
        sections.retain(|name, section| {
            if name
                .as_str()
                .is_some_and(|n| ["sensor", "opensearch"].contains(&n))
            {
                return true;
            }
            match d.get(name) {
                Some(default) => !drop_defaults(section, default),
                None => true,
            }
        });
    }
    let yaml = serde_yaml_ng::to_string(&value).expect("YAML values always serialise");
    format!(
        "# ids2 sensor configuration for {id}, written by ids2-provision.\n\
         # Check it with `ids2-agent check-config <file>`; install it as /etc/ids2/config.yaml.\n\
         {yaml}",
        id = config.sensor.id,
    )
}

fn yaml_value(config: &Config) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&config::to_yaml(config)).expect("the agent's YAML parses back")
}

/// Removes what equals `default` from `v`; true when nothing is left.
fn drop_defaults(v: &mut serde_yaml_ng::Value, default: &serde_yaml_ng::Value) -> bool {
    if v == default {
        return true;
    }
    match (v, default) {
        (serde_yaml_ng::Value::Mapping(m), serde_yaml_ng::Value::Mapping(d)) => {
            m.retain(|k, child| d.get(k).is_none_or(|dc| !drop_defaults(child, dc)));
            m.is_empty()
        }
        _ => false,
    }
}

fn drop_nulls(v: &mut serde_yaml_ng::Value) {
    if let serde_yaml_ng::Value::Mapping(m) = v {
        m.retain(|_, child| !child.is_null());
        m.values_mut().for_each(drop_nulls);
    }
}

/// Builds, validates and writes the config to `out` (atomically; an existing file only with
/// `force`). Nothing is written when validation fails.
pub fn write(o: &SensorOptions, out: &Path, force: bool) -> Result<Config, SensorError> {
    let config = build(o)?;
    if out.exists() && !force {
        return Err(SensorError::Exists(out.to_path_buf()));
    }
    let write_err = |source| SensorError::Write {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = out
        .file_name()
        .ok_or_else(|| write_err(std::io::Error::other("the path names no file")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(render(&config).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SensorOptions {
        SensorOptions {
            endpoint: "https://search-ids2-abc123.eu-west-1.es.amazonaws.com".into(),
            sensor_id: "pi5-lab-01".into(),
            sensor_name: None,
            region: None,
            domain: None,
            index_prefix: "ids2".into(),
            auth: SensorAuth::SigV4 {
                profile: Some("ids2-sensor".into()),
                credentials_file: Some("/run/credentials/ids2-agent/aws".into()),
                role_arn: None,
            },
            interface: None,
            home_net: vec![],
        }
    }

    #[test]
    fn region_and_domain_come_from_the_endpoint() {
        let c = build(&opts()).unwrap();
        assert_eq!(c.opensearch.region, "eu-west-1");
        assert_eq!(c.opensearch.domain, "ids2");
    }

    #[test]
    fn the_file_leaves_out_defaults_and_loads_back_to_the_same_config() {
        let mut o = opts();
        o.home_net = vec!["192.168.10.0/24".into()];
        let c = build(&o).unwrap();
        let text = render(&c);
        for default_section in ["logs", "suricata", "shipping", "fleet", "notifications"] {
            assert!(!text.contains(&format!("\n{default_section}:")), "{text}");
        }
        assert!(
            text.contains("capture:\n  home_net:\n  - 192.168.10.0/24\n"),
            "{text}"
        );
        assert!(!text.contains("interface:"), "eth0 is the default: {text}");
        assert!(
            text.contains("index_prefix: ids2"),
            "opensearch is kept whole: {text}"
        );
        let pruned = config::from_str(&text, Path::new("<pruned>")).unwrap();
        let full = config::from_str(&config::to_yaml(&c), Path::new("<full>")).unwrap();
        assert_eq!(pruned.config, full.config);
    }

    #[test]
    fn invalid_values_are_refused_with_the_agents_problems() {
        let mut o = opts();
        o.sensor_id = "Pi 5".into();
        o.home_net = vec!["10.0.0.0/33".into()];
        let e = build(&o).unwrap_err();
        let SensorError::Invalid(ConfigError::Invalid { problems, .. }) = &e else {
            panic!("{e:?}")
        };
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"sensor.id") && paths.contains(&"capture.home_net[0]"),
            "{paths:?}"
        );
    }

    #[test]
    fn non_aws_endpoint_needs_region_and_domain() {
        let mut o = opts();
        o.endpoint = "https://opensearch.example.org".into();
        assert!(matches!(
            build(&o),
            Err(SensorError::Missing { what: "region", .. })
        ));
        o.region = Some("eu-west-1".into());
        assert!(matches!(
            build(&o),
            Err(SensorError::Missing { what: "domain", .. })
        ));
        o.domain = Some("ids2".into());
        assert!(build(&o).is_ok());
        o.auth = SensorAuth::Basic {
            username: "writer".into(),
            password_file: String::new(),
        };
        assert!(matches!(build(&o), Err(SensorError::BasicIncomplete)));
    }
}
