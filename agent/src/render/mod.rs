//! Settings → the files of one generation (`suricata.yaml`, `vector.toml`, the local rules and
//! the normalised `config.yaml`), from the tera templates in `templates/`.
//!
//! Pure: reads no host state (templates are embedded; `templates_dir` is the override seam) and
//! writes nothing. Values are quoted by filters, never pasted raw, so a path or a name cannot
//! break the YAML/TOML/VRL it lands in.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{json, Value};

use crate::config::{self, AuthSettings, Settings};

/// `suricata.yaml` inside a generation.
pub const SURICATA_YAML: &str = "suricata.yaml";
/// `vector.toml` inside a generation.
pub const VECTOR_TOML: &str = "vector.toml";
/// The Redis copy's sink inside a generation (only with `shipping.redis`): Vector gets it as a
/// second `--config` only while Redis answers, so a Redis that is down cannot hold back the
/// OpenSearch path at Vector's start ([`crate::vector::RedisCopy`]).
pub const VECTOR_REDIS_TOML: &str = "vector-redis.toml";
/// The sensor's own Suricata rules inside a generation.
pub const LOCAL_RULES: &str = "rules/ids2.rules";
/// The normalised config (defaults filled in) inside a generation.
pub const CONFIG_YAML: &str = "config.yaml";
/// Where the ECS program leaves the deterministic document id; `vector.toml`'s `id_key`.
/// Vector moves it to the bulk `_id` and removes it from the document body.
pub const DOC_ID_FIELD: &str = "event.id";
/// Position of the local rules in `suricata.yaml`'s `rule-files` (0 is the downloaded set);
/// `suricata -T` overrides this entry to check a candidate generation's own copy.
pub const LOCAL_RULES_INDEX: usize = 1;
/// The agent's heartbeat file inside `logs.path` (written by `fleet::heartbeat`).
pub const HEARTBEAT_FILE: &str = "heartbeat.json";
/// The rotated heartbeat file inside `logs.path`.
pub const HEARTBEAT_ROTATED_FILE: &str = "heartbeat.json.1";
/// The agent's anomaly events inside `logs.path` (written by `anomaly::daemon`).
pub const ANOMALY_FILE: &str = "anomaly.json";
/// The behavioural detector's alerts (EVE alert lines) in `logs.path`; Vector reads them with
/// eve.json, through the same ECS mapping.
pub const BEHAVIOUR_FILE: &str = "behaviour.json";
/// Where the agent rotates [`BEHAVIOUR_FILE`] to.
pub const BEHAVIOUR_ROTATED_FILE: &str = "behaviour.json.1";
/// The rotated anomaly file inside `logs.path`.
pub const ANOMALY_ROTATED_FILE: &str = "anomaly.json.1";
/// The smallest disk buffer Vector accepts (256 MiB + 32 bytes, from Vector's buffer docs).
pub const VECTOR_MIN_DISK_BUFFER_BYTES: u64 = 268_435_488;
/// The heartbeat sink's disk buffer: Vector's smallest, months of heartbeats.
pub const HEARTBEAT_BUFFER_BYTES: u64 = VECTOR_MIN_DISK_BUFFER_BYTES;
/// Suricata's own config directory on Debian; NixOS passes its store path instead.
pub const DEFAULT_SURICATA_ETC: &str = "/etc/suricata";

const SURICATA_TEMPLATE: &str = "suricata.yaml.tera";
const VECTOR_TEMPLATE: &str = "vector.toml.tera";
const VECTOR_REDIS_TEMPLATE: &str = "vector-redis.toml.tera";
const ECS_TEMPLATE: &str = "ecs.vrl.tera";
/// Included at the end of the ECS program; renders only the joins of the tables configured.
const ENRICH_TEMPLATE: &str = "enrich.vrl.tera";
const RULES_FILE: &str = "rules/ids2.rules";

const EMBEDDED: &[(&str, &str)] = &[
    (
        SURICATA_TEMPLATE,
        include_str!("../../../templates/suricata.yaml.tera"),
    ),
    (
        VECTOR_TEMPLATE,
        include_str!("../../../templates/vector.toml.tera"),
    ),
    (
        VECTOR_REDIS_TEMPLATE,
        include_str!("../../../templates/vector-redis.toml.tera"),
    ),
    (
        ECS_TEMPLATE,
        include_str!("../../../templates/ecs.vrl.tera"),
    ),
    (
        ENRICH_TEMPLATE,
        include_str!("../../../templates/enrich.vrl.tera"),
    ),
    (
        RULES_FILE,
        include_str!("../../../templates/rules/ids2.rules"),
    ),
];

/// How much EVE output Suricata writes; the resource controller steps down under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Every type in `suricata.eve_types`.
    #[default]
    Full,
    /// Drops the costly outputs: flow, netflow and fileinfo.
    Reduced,
    /// Keeps only alert, anomaly and stats.
    AlertsOnly,
}

impl Profile {
    /// Whether this profile keeps an EVE type (by its `suricata.eve_types` name).
    pub fn keeps(self, eve_type: &str) -> bool {
        match self {
            Profile::Full => true,
            Profile::Reduced => !matches!(eve_type, "flow" | "netflow" | "fileinfo"),
            Profile::AlertsOnly => matches!(eve_type, "alert" | "anomaly" | "stats"),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Full => "full",
            Profile::Reduced => "reduced",
            Profile::AlertsOnly => "alerts-only",
        })
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Profile::Full),
            "reduced" => Ok(Profile::Reduced),
            "alerts-only" => Ok(Profile::AlertsOnly),
            other => Err(format!(
                "unknown profile `{other}`; expected full, reduced or alerts-only"
            )),
        }
    }
}

/// Knobs of one render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// EVE output profile.
    pub profile: Profile,
    /// A directory whose files replace the embedded templates of the same name
    /// (`suricata.yaml.tera`, `vector.toml.tera`, `vector-redis.toml.tera`, `ecs.vrl.tera`,
    /// `rules/ids2.rules`).
    pub templates_dir: Option<PathBuf>,
    /// Suricata's config directory holding classification.config, reference.config and
    /// threshold.config (`/etc/suricata` on Debian, the package's store path on NixOS).
    pub suricata_etc: PathBuf,
    /// The directory of generations the files will live in; `suricata.yaml` reaches the local
    /// rules through its `current` link. Defaults to `paths.rendered_dir`.
    pub rendered_dir: Option<PathBuf>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            profile: Profile::Full,
            templates_dir: None,
            suricata_etc: PathBuf::from(DEFAULT_SURICATA_ETC),
            rendered_dir: None,
        }
    }
}

/// The files of one generation: relative '/'-separated paths and their bytes, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSet {
    /// `(relative path, content)` pairs.
    pub files: Vec<(String, Vec<u8>)>,
}

impl RenderedSet {
    /// The content of one file, if the set has it.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.as_slice())
    }
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Vector needs a destination and none is configured.
    #[error(
        "opensearch.endpoint is not set: Vector has nowhere to ship events. Run \
         `ids2-provision` (it fills the endpoint in) or set opensearch.endpoint to the domain's \
         https:// endpoint"
    )]
    MissingEndpoint,
    /// Vector's AWS auth cannot read a credentials file and assume a role at once.
    #[error(
        "opensearch.auth.role_arn cannot be combined with opensearch.auth.credentials_file: \
         Vector reads either a credentials file or assumes a role. Put `role_arn` and \
         `source_profile` in the credentials file's profile and remove opensearch.auth.role_arn"
    )]
    RoleWithCredentialsFile,
    /// A value would need a character the target format cannot carry safely.
    #[error("{key} contains a control character; use printable characters only")]
    ControlCharacter {
        /// The config key.
        key: &'static str,
    },
    /// The ECS program would end the `'''` string it is embedded in.
    #[error("the ECS program contains `'''`, which cannot be embedded in vector.toml; use \"\" or ' instead")]
    EcsProgramQuote,
    /// A template override could not be read.
    #[error("cannot read template {}", path.display())]
    ReadTemplate {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A template failed to parse or render.
    #[error("template {name} ({origin}) failed to render")]
    Template {
        /// Template name, e.g. `suricata.yaml.tera`.
        name: String,
        /// `embedded` or the override directory.
        origin: String,
        /// Whether the template came from `templates_dir` (the operator's input).
        from_override: bool,
        /// Tera's error (its chain names the line and the cause).
        #[source]
        source: Box<tera::Error>,
    },
}

impl RenderError {
    /// True when the operator's input (config or template override) is at fault.
    pub fn is_bad_input(&self) -> bool {
        match self {
            RenderError::Template { from_override, .. } => *from_override,
            _ => true,
        }
    }
}

/// Renders the files of one generation.
pub fn render(settings: &Settings, opts: &RenderOptions) -> Result<RenderedSet, RenderError> {
    let templates = Templates::load(opts.templates_dir.as_deref())?;
    let endpoint = settings
        .config
        .opensearch
        .endpoint
        .clone()
        .ok_or(RenderError::MissingEndpoint)?;
    if let AuthSettings::AwsSigv4 {
        credentials_file: Some(_),
        role_arn: Some(_),
        ..
    } = &settings.auth
    {
        return Err(RenderError::RoleWithCredentialsFile);
    }

    let suricata = templates.render(SURICATA_TEMPLATE, &suricata_context(settings, opts))?;
    let enrich = EnrichVars::from_settings(settings);
    let program = templates.render(
        ECS_TEMPLATE,
        &ecs_context(&ProgramVars::from_settings(settings), &enrich)?,
    )?;
    if program.contains("'''") {
        return Err(RenderError::EcsProgramQuote);
    }
    let context = vector_context(settings, &endpoint, &program, &enrich);
    let vector = templates.render(VECTOR_TEMPLATE, &context)?;

    let mut files = vec![
        (SURICATA_YAML.into(), suricata.into_bytes()),
        (VECTOR_TOML.into(), vector.into_bytes()),
    ];
    if settings.config.shipping.redis.is_some() {
        let redis = templates.render(VECTOR_REDIS_TEMPLATE, &context)?;
        files.push((VECTOR_REDIS_TOML.into(), redis.into_bytes()));
    }
    files.push((
        LOCAL_RULES.into(),
        templates.raw(RULES_FILE).as_bytes().to_vec(),
    ));
    files.push((
        CONFIG_YAML.into(),
        config::to_yaml(&settings.config).into_bytes(),
    ));
    Ok(RenderedSet { files })
}

/// The line of `templates/ecs.vrl.tera` where its second part begins: the protocol sections,
/// which `vector.toml` runs as a second remap transform (`ecs_protocols`) because the two parts
/// compile in about half the time of the whole (the template says more).
pub const PROTOCOLS_MARKER: &str =
    "# ---- ids2: the protocol sections, a second remap (ecs_protocols) ----";

/// A rendered ECS program's two remap programs: the first part, and the protocol sections
/// (empty when the program has no [`PROTOCOLS_MARKER`] line, as a candidate program may not).
pub fn split_program(program: &str) -> (&str, &str) {
    match program.find(PROTOCOLS_MARKER) {
        Some(at) => (program[..at].trim_end(), program[at..].trim_end()),
        None => (program.trim_end(), ""),
    }
}

/// The ECS remap program (`templates/ecs.vrl.tera`) for these settings: both parts, which
/// `vector.toml` embeds as two remap transforms ([`split_program`]).
pub fn ecs_program(settings: &Settings) -> Result<String, RenderError> {
    Templates::load(None)?.render(
        ECS_TEMPLATE,
        &ecs_context(
            &ProgramVars::from_settings(settings),
            &EnrichVars::from_settings(settings),
        )?,
    )
}

/// The ECS remap program for an explicit sensor identity (tests, benchmarks, tools that have no
/// config file), without enrichment tables.
pub fn ecs_program_for(vars: &ProgramVars) -> Result<String, RenderError> {
    Templates::load(None)?.render(ECS_TEMPLATE, &ecs_context(vars, &EnrichVars::default())?)
}

/// Vector enrichment table holding the GeoLite2-City database.
pub const GEOIP_CITY_TABLE: &str = "geoip_city";
/// Vector enrichment table holding the GeoLite2-ASN database.
pub const GEOIP_ASN_TABLE: &str = "geoip_asn";
/// Vector enrichment table holding the agent's AbuseIPDB results.
pub const REPUTATION_TABLE: &str = "ids2_reputation";
/// Columns of the reputation table (CSV with this header) and the type Vector's `file` table
/// schema gives each; every other column is a string.
pub const REPUTATION_COLUMNS: &[(&str, &str)] = &[
    ("ip", "string"),
    ("type", "string"),
    ("score", "integer"),
    ("reports", "integer"),
    ("country", "string"),
    ("isp", "string"),
    ("usage_type", "string"),
    ("last_reported_at", "string"),
    ("checked_at", "string"),
];
/// Networks that are not globally routable (RFC 6890 special-purpose registries, multicast,
/// documentation): their addresses are never looked up, enriched or sent to a provider.
pub const NON_PUBLIC_NETS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/127",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether an address is globally routable (outside [`NON_PUBLIC_NETS`]).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    // Parsed once: this runs for every address of every alert.
    static NETS: std::sync::LazyLock<Vec<ipnet::IpNet>> = std::sync::LazyLock::new(|| {
        NON_PUBLIC_NETS
            .iter()
            .map(|n| n.parse().expect("NON_PUBLIC_NETS are CIDRs"))
            .collect()
    });
    !NETS.iter().any(|n| n.contains(&ip))
}

/// The enrichment tables a rendered pipeline declares and its ECS program joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrichVars {
    /// GeoLite2-City database, when configured and present.
    pub city_path: Option<String>,
    /// GeoLite2-ASN database, when configured and present.
    pub asn_path: Option<String>,
    /// The AbuseIPDB reputation table, when threat intelligence is configured.
    pub reputation_path: Option<String>,
}

impl EnrichVars {
    /// The tables for these settings. A configured database file that does not exist is left
    /// out: Vector would refuse to start on it, and a missing database must only mean missing
    /// fields (it is picked up by the next apply once it is there). The reputation table is
    /// created by the agent before the pipeline starts.
    pub fn from_settings(settings: &Settings) -> Self {
        let e = &settings.config.enrichment;
        let present = |p: &Option<String>| p.clone().filter(|p| Path::new(p).is_file());
        Self {
            city_path: present(&e.geoip_city_path),
            asn_path: present(&e.geoip_asn_path),
            reputation_path: e.abuseipdb.as_ref().map(|a| a.table_path.clone()),
        }
    }

    fn context(&self) -> Value {
        let nets: Vec<String> = NON_PUBLIC_NETS.iter().map(|n| format!("\"{n}\"")).collect();
        json!({
            "any": self.city_path.is_some() || self.asn_path.is_some()
                || self.reputation_path.is_some(),
            "city": self.city_path.is_some(),
            "asn": self.asn_path.is_some(),
            "reputation": self.reputation_path.is_some(),
            "city_path": self.city_path,
            "asn_path": self.asn_path,
            "reputation_path": self.reputation_path,
            "city_table": GEOIP_CITY_TABLE,
            "asn_table": GEOIP_ASN_TABLE,
            "reputation_table": REPUTATION_TABLE,
            "reputation_columns": REPUTATION_COLUMNS,
            "nonpublic": format!("[{}]", nets.join(", ")),
        })
    }
}

/// The values the ECS program embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramVars {
    /// `sensor.id`: part of every document id and `observer.hostname`.
    pub sensor_id: String,
    /// `sensor.name`: `observer.name`.
    pub sensor_name: String,
    /// `capture.interface`: `observer.ingress.interface.name` when the EVE has no `in_iface`.
    pub interface: String,
    /// `capture.home_net` as CIDR strings: decides `network.direction`.
    pub home_net: Vec<String>,
    /// Whether the sensor keeps packet evidence (`evidence.mode` not `off`): alerts are tagged
    /// [`EVIDENCE_TAG`].
    pub evidence: bool,
}

/// The ECS `tags` value of an alert whose flow's packets the sensor keeps (the portable core's,
/// which `ids2-provision`'s saved search also reads).
pub use ids2_core::ecs::EVIDENCE_TAG;

impl ProgramVars {
    /// The values for a validated config.
    pub fn from_settings(settings: &Settings) -> Self {
        let c = &settings.config;
        Self {
            sensor_id: c.sensor.id.clone(),
            sensor_name: c.sensor.name.clone().unwrap_or_else(|| c.sensor.id.clone()),
            interface: c.capture.interface.clone(),
            home_net: settings.home_net.iter().map(|n| n.to_string()).collect(),
            evidence: c.evidence.enabled(),
        }
    }
}

/// The EVE types Suricata writes under a profile. `stats` is always on: the agent reads Suricata's
/// counters (packets, kernel drops, memcap hits) from the stats records.
pub fn eve_types(settings: &Settings, profile: Profile) -> Vec<String> {
    let mut types: Vec<String> = settings
        .config
        .suricata
        .eve_types
        .iter()
        .filter(|t| profile.keeps(t))
        .cloned()
        .collect();
    if !types.iter().any(|t| t == "stats") {
        types.push("stats".into());
    }
    types
}

fn suricata_context(settings: &Settings, opts: &RenderOptions) -> Value {
    let c = &settings.config;
    let rendered_dir = opts
        .rendered_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&c.paths.rendered_dir));
    let etc = |file: &str| opts.suricata_etc.join(file).display().to_string();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sensor_id": c.sensor.id,
        "home_net": format!("[{}]", c.capture.home_net.join(",")),
        "log_dir": c.logs.path,
        "eve_types": eve_types(settings, opts.profile),
        "interface": c.capture.interface,
        "workers": c.capture.workers,
        "ring_size": c.capture.ring_size,
        "block_size_bytes": c.capture.block_size_bytes,
        "socket_path": c.suricata.socket_path,
        "memory_mb": c.suricata.memory_mb,
        "memcaps": settings.memcaps,
        "pin_workers": c.capture.pin_workers,
        "worker_cores": c.capture.cpu_cores,
        "management_cores": management_cores(&c.capture.cpu_cores),
        "rules_dir": c.suricata.rules_dir,
        "local_rules": rendered_dir.join("current").join(LOCAL_RULES).display().to_string(),
        // Read through intel.dir/current, so feed updates need no re-render; missing until
        // the first `intel update`, which Suricata only warns about.
        "intel_rules": c.intel.enabled().then(|| {
            std::path::Path::new(&c.intel.dir)
                .join("current")
                .join(crate::intel::feeds::compile::RULES_FILE)
                .display()
                .to_string()
        }),
        "evidence": evidence_context(settings),
        "classification_file": etc("classification.config"),
        "reference_file": etc("reference.config"),
        // The fleet policy's file (ids2-agent policy update) replaces the package's, which
        // ships only comments; missing until the first fetch, which Suricata only warns about.
        "threshold_file": if c.fleet.policy.enabled {
            std::path::Path::new(&c.suricata.rules_dir)
                .join(crate::fleet::policy::THRESHOLD_FILE)
                .display()
                .to_string()
        } else {
            etc("threshold.config")
        },
    })
}

/// Suricata's `pcap-log` for `evidence`, or null when it is off. In `alerts` mode the ring goes to
/// the default log directory (the log tmpfs, or wherever `suricata -T -l` points it); in `full`
/// mode to `full_capture_dir`.
fn evidence_context(settings: &Settings) -> Value {
    let e = &settings.config.evidence;
    if !e.enabled() {
        return Value::Null;
    }
    json!({
        "filename": crate::evidence::ring::FILENAME_PATTERN,
        "dir": (e.mode == config::EvidenceMode::Full).then(|| e.ring_dir(&settings.config.logs)),
        "limit_mb": e.ring_file_mb,
        "max_files": e.ring_files,
        "compression": e.compression.name(),
    })
}

/// Cores left to Suricata's management threads: those of the Pi 5's four (or of the highest
/// worker core, on bigger hosts) not given to workers; core 0 if the workers take them all.
fn management_cores(workers: &[u32]) -> Vec<u32> {
    let top = workers.iter().copied().max().unwrap_or(0).max(3);
    let rest: Vec<u32> = (0..=top).filter(|c| !workers.contains(c)).collect();
    if rest.is_empty() {
        vec![0]
    } else {
        rest
    }
}

/// Every value reaches the template as a complete VRL literal, so the template cannot forget to
/// quote or escape one.
fn ecs_context(vars: &ProgramVars, enrich: &EnrichVars) -> Result<Value, RenderError> {
    let literal = |key, s: &str| vrl_escape(key, s).map(|e| format!("\"{e}\""));
    let home_net = vars
        .home_net
        .iter()
        .map(|n| literal("capture.home_net", n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "sensor_id": literal("sensor.id", &vars.sensor_id)?,
        "sensor_name": literal("sensor.name", &vars.sensor_name)?,
        "interface": literal("capture.interface", &vars.interface)?,
        "home_net": format!("[{}]", home_net.join(",")),
        "evidence_tag": vars.evidence.then(|| format!("\"{EVIDENCE_TAG}\"")),
        "enrich": enrich.context(),
    }))
}

fn vector_context(
    settings: &Settings,
    endpoint: &str,
    program: &str,
    enrich: &EnrichVars,
) -> Value {
    let c = &settings.config;
    let (core, protocols) = split_program(program);
    let mib = |n: u32| u64::from(n) * 1024 * 1024;
    let auth = match &settings.auth {
        AuthSettings::AwsSigv4 {
            profile,
            credentials_file,
            role_arn,
        } => json!({
            "method": "aws_sigv4",
            "profile": profile,
            "credentials_file": credentials_file.as_ref().map(|p| p.display().to_string()),
            "role_arn": role_arn,
        }),
        AuthSettings::Basic { username, .. } => json!({
            "method": "basic",
            "username": username,
        }),
    };
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sensor_id": c.sensor.id,
        "vector_data_dir": c.paths.vector_data_dir,
        "vector_metrics_addr": c.shipping.vector_metrics_listen,
        "eve_path": Path::new(&c.logs.path).join("eve.json").display().to_string(),
        "eve_rotated_path": crate::eve::Rotation::rotated_path(&Path::new(&c.logs.path).join("eve.json")).display().to_string(),
        "heartbeat_path": Path::new(&c.logs.path).join(HEARTBEAT_FILE).display().to_string(),
        "heartbeat_rotated_path": Path::new(&c.logs.path).join(HEARTBEAT_ROTATED_FILE).display().to_string(),
        "heartbeat_buffer_bytes": HEARTBEAT_BUFFER_BYTES,
        "anomaly_path": Path::new(&c.logs.path).join(ANOMALY_FILE).display().to_string(),
        "behaviour_path": Path::new(&c.logs.path).join(BEHAVIOUR_FILE).display().to_string(),
        "behaviour_rotated_path": Path::new(&c.logs.path).join(BEHAVIOUR_ROTATED_FILE).display().to_string(),
        "anomaly_rotated_path": Path::new(&c.logs.path).join(ANOMALY_ROTATED_FILE).display().to_string(),
        // Vector expands `$VAR` in its whole config text, the embedded program included.
        "ecs_program": core.replace('$', "$$"),
        "ecs_protocols_program": protocols.replace('$', "$$"),
        "endpoint": endpoint,
        "region": c.opensearch.region,
        "index_prefix": c.opensearch.index_prefix,
        "id_field": DOC_ID_FIELD,
        "eve_max_line_bytes": crate::eve::MAX_LINE_BYTES,
        "batch_max_bytes": mib(c.shipping.batch_max_mb),
        "batch_max_events": c.shipping.batch_max_events,
        "batch_timeout_secs": c.shipping.batch_timeout_secs,
        "compression": c.shipping.compression.name(),
        // Vector refuses a disk buffer under its minimum, which is 32 bytes over 256 MiB, so the
        // documented 256 MiB default is rounded up to it rather than failing at start.
        "buffer_max_bytes": mib(c.shipping.buffer_max_mb).max(VECTOR_MIN_DISK_BUFFER_BYTES),
        "auth": auth,
        "redis": c.shipping.redis,
        "enrich": enrich.context(),
    })
}

/// Escapes a value for use inside a VRL double-quoted string.
fn vrl_escape(key: &'static str, s: &str) -> Result<String, RenderError> {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            // VRL reads `{{ … }}` inside strings as a template.
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            c if c.is_control() => return Err(RenderError::ControlCharacter { key }),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The template sources for one render: embedded, each replaced by a same-named file in the
/// override directory when there is one.
struct Templates {
    sources: HashMap<&'static str, (String, Option<PathBuf>)>,
}

impl Templates {
    fn load(dir: Option<&Path>) -> Result<Self, RenderError> {
        let mut sources = HashMap::new();
        for (name, embedded) in EMBEDDED {
            let over = dir.map(|d| d.join(name)).filter(|p| p.exists());
            let text = match &over {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|source| RenderError::ReadTemplate {
                        path: path.clone(),
                        source,
                    })?
                }
                None => (*embedded).to_string(),
            };
            sources.insert(*name, (text, over));
        }
        Ok(Self { sources })
    }

    fn raw(&self, name: &str) -> &str {
        &self.sources[name].0
    }

    fn render(&self, name: &'static str, context: &Value) -> Result<String, RenderError> {
        let (text, over) = &self.sources[name];
        let fail = |source| RenderError::Template {
            name: name.to_string(),
            origin: over
                .as_ref()
                .map_or_else(|| "embedded".to_string(), |p| p.display().to_string()),
            from_override: over.is_some(),
            source: Box::new(source),
        };
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("quote", quote);
        tera.register_filter("vstr", vector_string);
        if name == ECS_TEMPLATE {
            let (include, _) = &self.sources[ENRICH_TEMPLATE];
            tera.add_raw_template(ENRICH_TEMPLATE, include)
                .map_err(fail)?;
        }
        tera.add_raw_template(name, text).map_err(fail)?;
        let ctx = tera::Context::from_value(context.clone()).map_err(fail)?;
        tera.render(name, &ctx).map_err(fail)
    }
}

/// A double-quoted string, valid in YAML and TOML alike (JSON escapes are a subset of both).
fn quote(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("quote: expected a string, got {value}")))?;
    Ok(Value::String(
        serde_json::to_string(s).expect("strings serialise"),
    ))
}

/// A TOML string for Vector, whose config loader expands `$VAR`: a literal `$` becomes `$$`.
fn vector_string(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let quoted = quote(value, args)?;
    Ok(Value::String(
        quoted.as_str().unwrap_or_default().replace('$', "$$"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "sensor: {id: lab-1, name: Lab}\nopensearch: {domain: ids2, region: eu-west-1, \
                        endpoint: 'https://search-x.eu-west-1.es.amazonaws.com'}\n";

    fn settings(extra: &str) -> Settings {
        config::from_str(&format!("{BASE}{extra}"), Path::new("t.yaml")).unwrap()
    }

    fn text(set: &RenderedSet, path: &str) -> String {
        String::from_utf8(set.get(path).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn profiles_filter_eve_types_and_keep_stats() {
        let s = settings("suricata: {eve_types: [alert, flow, dns, fileinfo, netflow, anomaly]}\n");
        assert_eq!(
            eve_types(&s, Profile::Full),
            ["alert", "flow", "dns", "fileinfo", "netflow", "anomaly", "stats"]
        );
        assert_eq!(
            eve_types(&s, Profile::Reduced),
            ["alert", "dns", "anomaly", "stats"]
        );
        assert_eq!(
            eve_types(&s, Profile::AlertsOnly),
            ["alert", "anomaly", "stats"]
        );
        let reduced = render(
            &s,
            &RenderOptions {
                profile: Profile::Reduced,
                ..Default::default()
            },
        )
        .unwrap();
        let yaml = text(&reduced, SURICATA_YAML);
        assert!(
            !yaml.contains("- flow") && !yaml.contains("- files:"),
            "{yaml}"
        );
        assert!(yaml.contains("- dns"));
    }

    #[test]
    fn profile_names_round_trip() {
        for p in [Profile::Full, Profile::Reduced, Profile::AlertsOnly] {
            assert_eq!(p.to_string().parse::<Profile>().unwrap(), p);
        }
        assert!("all".parse::<Profile>().is_err());
    }

    #[test]
    fn management_cores_avoid_workers() {
        assert_eq!(management_cores(&[2, 3]), [0, 1]);
        assert_eq!(management_cores(&[1]), [0, 2, 3]);
        assert_eq!(management_cores(&[0, 1, 2, 3]), [0]);
        assert_eq!(management_cores(&[6, 7]), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn missing_endpoint_is_refused_by_name() {
        let s = config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let err = render(&s, &RenderOptions::default()).unwrap_err();
        assert!(matches!(err, RenderError::MissingEndpoint));
        assert!(err.to_string().contains("opensearch.endpoint"));
        assert!(err.is_bad_input());
    }

    #[test]
    fn role_with_credentials_file_is_refused() {
        let s = config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1, \
             endpoint: 'https://h', auth: {credentials_file: /run/c, \
             role_arn: 'arn:aws:iam::1:role/r'}}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert!(matches!(
            render(&s, &RenderOptions::default()),
            Err(RenderError::RoleWithCredentialsFile)
        ));
    }

    #[test]
    fn vrl_values_are_escaped() {
        assert_eq!(vrl_escape("k", r#"a"b\c{d}"#).unwrap(), r#"a\"b\\c\{d\}"#);
        assert!(matches!(
            vrl_escape("sensor.name", "a\nb"),
            Err(RenderError::ControlCharacter { key: "sensor.name" })
        ));
    }

    #[test]
    fn dollar_signs_are_escaped_for_vector() {
        let s = settings("paths: {vector_data_dir: /var/lib/vec$tor}\n");
        let toml = text(&render(&s, &RenderOptions::default()).unwrap(), VECTOR_TOML);
        assert!(toml.contains(r#"data_dir = "/var/lib/vec$$tor""#), "{toml}");
    }

    #[test]
    fn local_rules_are_reached_through_current() {
        let s = settings("");
        let opts = RenderOptions {
            rendered_dir: Some(PathBuf::from("/tmp/out")),
            ..Default::default()
        };
        let yaml = text(&render(&s, &opts).unwrap(), SURICATA_YAML);
        assert!(
            yaml.contains("  - \"/tmp/out/current/rules/ids2.rules\""),
            "{yaml}"
        );
    }

    #[test]
    fn template_override_replaces_only_named_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/ids2.rules"), "# empty\n").unwrap();
        let opts = RenderOptions {
            templates_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let set = render(&settings(""), &opts).unwrap();
        assert_eq!(set.get(LOCAL_RULES).unwrap(), b"# empty\n");
        assert!(text(&set, SURICATA_YAML).contains("runmode: workers"));
    }

    #[test]
    fn broken_override_template_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vector.toml.tera"), "{% if %}").unwrap();
        let opts = RenderOptions {
            templates_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let err = render(&settings(""), &opts).unwrap_err();
        assert!(
            matches!(&err, RenderError::Template { name, .. } if name == "vector.toml.tera"),
            "{err:?}"
        );
        assert!(err.is_bad_input());
    }
}
