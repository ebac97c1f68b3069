//! `ids2-provision`: the operator's CLI — the OpenSearch domain, its templates, lifecycle
//! and dashboards, and sensor configs.
//!
//! Each subcommand parses its arguments and calls one library function; this file maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ids2_provision::aws::AwsTarget;
use ids2_provision::domain::{DomainError, DomainInfo, DomainSpec, Domains, Ensured, Wait};
use ids2_provision::health;
use ids2_provision::rest::Rest;
use ids2_provision::sensor::{self, SensorAuth, SensorError, SensorOptions};
use ids2_provision::setup::{self, SetupError, SetupOptions};
use ids2_provision::tune::{self, TuneError};

/// Provision AWS OpenSearch for ids2 sensors: the domain, index templates, lifecycle policy,
/// dashboards, and each sensor's config.yaml.
///
/// The usual order: `domain ensure`, then `opensearch setup`, then `sensor config` per sensor.
#[derive(Parser)]
#[command(name = "ids2-provision", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The AWS OpenSearch Service domain (control plane).
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Index templates, ISM lifecycle policy and Dashboards objects on a running domain.
    #[command(subcommand)]
    Opensearch(OpensearchCommand),
    /// Sensor configuration files.
    #[command(subcommand)]
    Sensor(SensorCommand),
    /// The sensors as their heartbeats show them.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Packet evidence, fetched from the sensor that keeps it.
    #[command(subcommand)]
    Pcap(PcapCommand),
    /// The fleet policy: suppress, threshold, disable or enable rules for the whole fleet, a
    /// group or one sensor; every sensor in scope applies it within `fleet.policy.interval_secs`.
    Tune {
        #[command(subcommand)]
        action: TuneCommand,
        #[command(flatten)]
        conn: Connection,
    },
}

/// How to reach a domain: the flags every command that talks to OpenSearch takes.
#[derive(Args)]
struct Connection {
    /// The domain endpoint, e.g. https://search-ids2-abc.eu-west-1.es.amazonaws.com
    /// (`domain ensure` prints it). Plain http is accepted only for localhost.
    #[arg(long, value_name = "URL", global = true)]
    endpoint: Option<String>,
    /// Index prefix; must equal opensearch.index_prefix in the sensors' config.
    #[arg(long, default_value = "ids2", global = true)]
    index_prefix: String,
    /// How to authenticate.
    #[arg(long, value_enum, default_value = "sigv4", global = true)]
    auth: AuthMethod,
    /// sigv4: the domain's region (read from an AWS endpoint host when omitted).
    #[arg(long, global = true)]
    region: Option<String>,
    /// sigv4: AWS profile.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// basic: user name.
    #[arg(long, global = true)]
    username: Option<String>,
    /// basic: file whose first line is the password.
    #[arg(long, value_name = "FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Seconds one HTTP request may take.
    #[arg(long, default_value_t = 30, global = true)]
    timeout_secs: u64,
}

/// What the health monitors page on (`opensearch setup` installs them, `fleet health` runs
/// them); docs/fleet.md lists the defaults.
#[derive(Args)]
struct HealthArgs {
    /// Kernel drops between two heartbeats that page, in percent of the packets captured.
    #[arg(long, default_value_t = health::DEFAULT_DROP_PERCENT)]
    drop_alert_percent: f64,
    /// Days without a rule-set or intel-feed update that page.
    #[arg(long, default_value_t = health::DEFAULT_STALE_DAYS)]
    stale_alert_days: u32,
    /// Log tmpfs use that pages, in percent.
    #[arg(long, default_value_t = health::DEFAULT_TMPFS_PERCENT)]
    tmpfs_alert_percent: u32,
    /// Minutes at throttle level 2 or more that page.
    #[arg(long, default_value_t = health::DEFAULT_THROTTLE_MINUTES)]
    throttle_alert_minutes: u32,
    /// Vector disk-buffer use (the shipping backlog) that pages, in percent.
    #[arg(long, default_value_t = health::DEFAULT_BACKLOG_PERCENT)]
    backlog_alert_percent: u32,
    /// Minutes without a fleet-policy fetch that page.
    #[arg(long, default_value_t = health::DEFAULT_POLICY_MINUTES)]
    policy_alert_minutes: u32,
}

impl HealthArgs {
    fn thresholds(&self) -> health::Thresholds {
        health::Thresholds {
            drop_percent: self.drop_alert_percent,
            stale_days: self.stale_alert_days,
            tmpfs_percent: self.tmpfs_alert_percent,
            throttle_minutes: self.throttle_alert_minutes,
            backlog_percent: self.backlog_alert_percent,
            policy_minutes: self.policy_alert_minutes,
        }
    }
}

#[derive(Subcommand)]
enum PcapCommand {
    /// Write one alerted flow's evidence pcap, fetched from its sensor over SSH (the access
    /// `nixos-rebuild --target-host` uses), to standard output or --out. Exit 2 when the sensor
    /// keeps no such flow, 1 when it cannot be reached.
    Get {
        /// The sensor as ssh takes it: [user@]host, e.g. root@pi5-lab-01.
        #[arg(long)]
        sensor: String,
        #[command(flatten)]
        selector: PcapSelector,
        /// Where to write it (default: standard output); written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// SSH port (default: ssh's).
        #[arg(long)]
        ssh_port: Option<u16>,
        /// SSH identity file (default: ssh's keys and agent).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// An extra `ssh -o` option (repeatable), e.g. StrictHostKeyChecking=accept-new.
        #[arg(long = "ssh-option", value_name = "OPTION")]
        ssh_options: Vec<String>,
        /// The agent program on the sensor.
        #[arg(long, default_value = "ids2-agent")]
        agent: String,
        /// The sensor's config file, when not the agent's default.
        #[arg(long, value_name = "FILE")]
        agent_config: Option<String>,
    },
}

/// Which flow: exactly one of the three, as `ids2-agent pcap get` takes them.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct PcapSelector {
    /// The flow's community id (ECS `network.community_id`).
    #[arg(long)]
    community_id: Option<String>,
    /// Suricata's flow id (EVE `flow_id`).
    #[arg(long)]
    flow_id: Option<u64>,
    /// An alert's ECS `event.id`.
    #[arg(long, value_name = "EVENT_ID")]
    alert: Option<String>,
}

/// Which sensors an entry applies to: exactly one of the three.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ScopeArgs {
    /// Every sensor.
    #[arg(long)]
    fleet: bool,
    /// Sensors listing this group in fleet.policy.groups.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// One sensor, by sensor.id.
    #[arg(long, value_name = "ID")]
    sensor: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> String {
        match (&self.group, &self.sensor) {
            (Some(g), _) => format!("group:{g}"),
            (_, Some(s)) => format!("sensor:{s}"),
            _ => "fleet".to_string(),
        }
    }
}

/// What every new entry says about itself.
#[derive(Args)]
struct EntryArgs {
    /// The rule's signature id.
    #[arg(long)]
    sid: u32,
    /// The rule's generator id.
    #[arg(long, default_value_t = 1)]
    gid: u32,
    #[command(flatten)]
    scope: ScopeArgs,
    /// Why (required; sensors write it beside the rule in their threshold.config).
    #[arg(long)]
    reason: String,
    /// When the entry stops applying (RFC 3339, e.g. 2026-12-31T00:00:00Z).
    #[arg(long, conflicts_with = "for_hours")]
    expires: Option<String>,
    /// Hours from now until the entry stops applying.
    #[arg(long)]
    for_hours: Option<u32>,
    /// Who is tuning (defaults to $USER).
    #[arg(long, env = "USER", default_value = "unknown")]
    author: String,
}

#[derive(Subcommand)]
enum TuneCommand {
    /// No alert of the rule for these addresses (--ip with --track), or for any.
    Suppress {
        #[command(flatten)]
        entry: EntryArgs,
        /// by_src, by_dst or by_either: which address of the alert --ip is matched against.
        #[arg(long, requires = "ip")]
        track: Option<String>,
        /// The address or CIDR whose alerts are dropped.
        #[arg(long, requires = "track")]
        ip: Option<String>,
    },
    /// Limit the rule's alerts (Suricata's threshold: limit, threshold or both).
    Threshold {
        #[command(flatten)]
        entry: EntryArgs,
        /// limit, threshold or both.
        #[arg(long = "type")]
        kind: String,
        /// by_src, by_dst, by_rule or by_both.
        #[arg(long)]
        track: String,
        /// Matches counted.
        #[arg(long)]
        count: u32,
        /// Length of the counting window in seconds.
        #[arg(long)]
        seconds: u32,
    },
    /// No alert of the rule anywhere in the scope (the rule still runs).
    Disable {
        #[command(flatten)]
        entry: EntryArgs,
    },
    /// Enable a rule its source ships disabled, at the sensors' next rule update.
    Enable {
        #[command(flatten)]
        entry: EntryArgs,
    },
    /// The entries (active, expiring, expired, invalid) and each sensor's applied version.
    List {
        /// Seconds without a heartbeat after which a sensor is offline.
        #[arg(long, default_value_t = 60)]
        offline_after_secs: u64,
    },
    /// End an entry now (it stays in the index as a record); sensors drop it at their next fetch.
    Expire {
        /// The entry's id (from `tune list`).
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// The health checks the Alerting monitors run, as plain searches over the last heartbeats:
    /// one line per check, with the sensors in breach. Exit status 3 when any check alerts.
    Health {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        thresholds: HealthArgs,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Each sensor's last heartbeat: last seen, state (online; late after two heartbeat
    /// intervals; offline after --offline-after-secs), throttle level, kernel drops, rule-set age.
    Status {
        #[command(flatten)]
        conn: Connection,
        /// Print JSON (one object per sensor) instead of a table.
        #[arg(long)]
        json: bool,
        /// Seconds without a heartbeat after which a sensor is offline.
        #[arg(long, default_value_t = 60)]
        offline_after_secs: u64,
    },
}

#[derive(Args)]
struct DomainTarget {
    /// Domain name: 3–28 characters of a-z, 0-9 and '-', starting with a letter.
    #[arg(long)]
    name: String,
    /// AWS region of the domain, e.g. eu-west-1.
    #[arg(long)]
    region: String,
    /// AWS profile from ~/.aws/config (default: the SDK's usual chain, AWS_PROFILE included).
    #[arg(long)]
    profile: Option<String>,
    /// Send API calls here instead of AWS (an emulator such as moto_server).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

impl DomainTarget {
    fn aws(&self) -> AwsTarget {
        AwsTarget {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Create the domain if it does not exist (never touches an existing one), wait until it
    /// is active, and print its endpoint.
    ///
    /// New domains get HTTPS enforced with TLS 1.2+, encryption at rest, node-to-node
    /// encryption, and an access policy that admits only the given principals.
    Ensure {
        #[command(flatten)]
        target: DomainTarget,
        /// Engine version for a new domain.
        #[arg(long, default_value = "OpenSearch_2.19")]
        engine_version: String,
        /// Data node instance type for a new domain.
        #[arg(long, default_value = "t3.small.search")]
        instance_type: String,
        /// Data node count for a new domain (more than one spreads them over zones).
        #[arg(long, default_value_t = 1)]
        instance_count: u32,
        /// gp3 volume per data node, in GiB.
        #[arg(long, default_value_t = 10)]
        volume_gb: u32,
        /// IAM user or role ARN allowed to use the domain (repeat it; include the sensors'
        /// role). Required when the domain must be created; the first one's account owns it.
        #[arg(long = "principal", value_name = "ARN")]
        principals: Vec<String>,
        /// Give up waiting for the domain to become active after this many seconds.
        #[arg(long, default_value_t = 2700)]
        timeout_secs: u64,
        /// Seconds between status polls while waiting.
        #[arg(long, default_value_t = 20, hide = true)]
        poll_secs: u64,
    },
    /// Show the domain's state, endpoint, size and security settings.
    Status {
        #[command(flatten)]
        target: DomainTarget,
    },
    /// Delete the domain and every event in it. Refuses without --yes.
    Delete {
        #[command(flatten)]
        target: DomainTarget,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMethod {
    /// AWS SigV4 with the SDK's credential chain (IAM access policy).
    Sigv4,
    /// HTTP basic auth (fine-grained access control's internal users).
    Basic,
}

#[derive(Subcommand)]
enum OpensearchCommand {
    /// Install or update the index templates, ISM policy and Dashboards objects; objects
    /// that already match are left alone, so a second run prints "no changes".
    Setup {
        #[command(flatten)]
        conn: Connection,
        /// Days an index is kept before the ISM policy deletes it.
        #[arg(long, default_value_t = 30)]
        retention_days: u32,
        /// Replicas per shard: 0 for a one-node domain, 1 with two or more data nodes.
        #[arg(long, default_value_t = 0)]
        replicas: u32,
        /// OpenSearch Dashboards URL (default: <endpoint>/_dashboards, as AWS serves it).
        #[arg(long, value_name = "URL")]
        dashboards_url: Option<String>,
        /// Seconds without a heartbeat after which the "sensor offline" monitor alerts
        /// (fleet.offline_after_secs on the sensors).
        #[arg(long, default_value_t = 60)]
        offline_after_secs: u32,
        /// Webhook the "sensor offline" monitor notifies (an OpenSearch Notifications channel).
        #[arg(long, value_name = "URL", conflicts_with = "alert_webhook_url_file")]
        alert_webhook_url: Option<String>,
        /// File whose first line is that webhook URL (when the URL is a secret, as Slack's are).
        #[arg(long, value_name = "FILE")]
        alert_webhook_url_file: Option<PathBuf>,
        #[command(flatten)]
        health: HealthArgs,
        /// Install or update the index templates alone, not the ISM policy, Dashboards objects
        /// or the monitors: for a cluster without those plugins (the osmem-server emulator).
        #[arg(
            long,
            conflicts_with_all = ["alert_webhook_url", "alert_webhook_url_file", "retention_days", "dashboards_url"]
        )]
        templates_only: bool,
    },
}

#[derive(Subcommand)]
enum SensorCommand {
    /// Write a sensor config.yaml that passes `ids2-agent check-config`.
    Config {
        /// The domain endpoint the sensor ships to.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// Sensor id: 1–63 characters of a-z, 0-9 and '-'.
        #[arg(long)]
        sensor_id: String,
        /// Display name (default: the id).
        #[arg(long)]
        sensor_name: Option<String>,
        /// Output file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
        /// AWS region (read from an AWS endpoint host when omitted).
        #[arg(long)]
        region: Option<String>,
        /// Domain name (read from an AWS endpoint host when omitted).
        #[arg(long)]
        domain: Option<String>,
        /// Index prefix; must match `opensearch setup --index-prefix`.
        #[arg(long, default_value = "ids2")]
        index_prefix: String,
        /// How the sensor authenticates.
        #[arg(long, value_enum, default_value = "sigv4")]
        auth: AuthMethod,
        /// sigv4: profile in the sensor's credentials file.
        #[arg(long, default_value = "ids2-sensor")]
        profile: String,
        /// sigv4: the credentials file on the sensor.
        #[arg(long, default_value = "/run/credentials/ids2-agent/aws")]
        credentials_file: String,
        /// sigv4: IAM role the sensor assumes.
        #[arg(long, value_name = "ARN")]
        role_arn: Option<String>,
        /// basic: user name.
        #[arg(long)]
        username: Option<String>,
        /// basic: password file on the sensor.
        #[arg(long, value_name = "FILE")]
        password_file: Option<String>,
        /// Capture interface (default eth0).
        #[arg(long)]
        interface: Option<String>,
        /// Protected network as a CIDR (repeat it; default: the RFC 1918 ranges).
        #[arg(long = "home-net", value_name = "CIDR")]
        home_net: Vec<String>,
    },
}

impl Connection {
    /// The domain's base URL. `--endpoint` is checked here, not by clap, because a global
    /// flag (which `tune`'s subcommands need) cannot be a required one.
    fn base(&self) -> Result<String, Failure> {
        let endpoint = self.endpoint.as_deref().ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!(
                "--endpoint is required: the domain endpoint, e.g. \
                 https://search-ids2-abc.eu-west-1.es.amazonaws.com (`ids2-provision domain \
                 ensure` prints it)"
            ),
        })?;
        Ok(setup::check_endpoint(endpoint)?.base)
    }

    /// The domain's base URL and the REST client for it.
    async fn connect(&self) -> Result<(String, Rest), Failure> {
        let base = self.base()?;
        let rest = self.rest(&base).await?;
        Ok((base, rest))
    }

    /// The REST client for the domain at `base`: SigV4 (the region read from an AWS endpoint
    /// host when not given) or basic auth (the password from IDS2_OPENSEARCH_PASSWORD, else
    /// the file).
    async fn rest(&self, base: &str) -> anyhow::Result<Rest> {
        let auth = match self.auth {
            AuthMethod::Sigv4 => {
                setup::sigv4_auth(base, self.region.as_deref(), self.profile.as_deref()).await?
            }
            AuthMethod::Basic => setup::basic_auth(
                self.username.as_deref(),
                std::env::var("IDS2_OPENSEARCH_PASSWORD").ok(),
                self.password_file.as_deref(),
            )?,
        };
        Ok(Rest::new(auth, Duration::from_secs(self.timeout_secs))?)
    }
}

/// An error that carries the exit code it should produce.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = if is_bad_input(&error) { 2 } else { 1 };
        Failure { code, error }
    }
}

/// Bad input (exit 2) is anything the operator can fix in what they passed us.
fn is_bad_input(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<DomainError>()
            .is_some_and(DomainError::is_bad_input)
            || cause
                .downcast_ref::<SetupError>()
                .is_some_and(SetupError::is_bad_input)
            || cause
                .downcast_ref::<SensorError>()
                .is_some_and(SensorError::is_bad_input)
            || cause
                .downcast_ref::<TuneError>()
                .is_some_and(TuneError::is_bad_input)
            || cause
                .downcast_ref::<ids2_provision::pcap::PcapError>()
                .is_some_and(ids2_provision::pcap::PcapError::is_bad_input)
    })
}

/// Builds a policy entry from the command line, read exactly as sensors read documents
/// (an unknown `--track` or `--type` is refused with the accepted values); the rest of the
/// validation happens in [`tune::write`].
fn tune_entry(
    action: &str,
    e: &EntryArgs,
    extra: serde_json::Value,
    now: time::OffsetDateTime,
) -> Result<ids2_core::policy::Entry, TuneError> {
    use time::format_description::well_known::Rfc3339;
    let expires = match (e.expires.clone(), e.for_hours) {
        (Some(t), _) => Some(t),
        (None, Some(h)) => Some(
            (now + time::Duration::hours(h.into()))
                .format(&Rfc3339)
                .expect("UTC times format"),
        ),
        (None, None) => None,
    };
    let mut doc = serde_json::json!({
        "action": action,
        "scope": e.scope.scope(),
        "sid": e.sid,
        "gid": e.gid,
        "reason": e.reason,
        "author": e.author,
        "created": now.format(&Rfc3339).expect("UTC times format"),
    });
    if let Some(t) = expires {
        doc["expires"] = t.into();
    }
    if let (Some(d), Some(x)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(
            x.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    serde_json::from_value(doc).map_err(|err| {
        TuneError::Invalid(ids2_core::policy::Skipped {
            id: "(new)".to_string(),
            problems: vec![err.to_string()],
        })
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Domain(DomainCommand::Ensure {
            target,
            engine_version,
            instance_type,
            instance_count,
            volume_gb,
            principals,
            timeout_secs,
            poll_secs,
        }) => {
            let spec = DomainSpec {
                name: target.name.clone(),
                engine_version,
                instance_type,
                instance_count,
                volume_gb,
                principals,
            };
            ids2_provision::domain::check_spec(&spec)?;
            let wait = Wait {
                timeout: Duration::from_secs(timeout_secs),
                poll: Duration::from_secs(poll_secs.max(1)),
            };
            let domains = Domains::connect(&target.aws()).await?;
            let mut progress = progress_printer();
            let outcome = domains.ensure(&spec, wait, &mut progress).await;
            clear_progress_line();
            let outcome = outcome?;
            let info = outcome.info();
            match &outcome {
                Ensured::Created(_) => {
                    eprintln!("created domain {} in {}", info.name, target.region)
                }
                Ensured::Existing(_) => {
                    eprintln!("domain {} already exists; nothing changed", info.name);
                    for w in &info.warnings {
                        eprintln!("warning: existing domain: {w} (ensure never changes an existing domain; fix it in the AWS console)");
                    }
                }
            }
            println!("{}", info.endpoint.as_deref().unwrap_or_default());
            Ok(())
        }
        Command::Domain(DomainCommand::Status { target }) => {
            let info = Domains::connect(&target.aws())
                .await?
                .status(&target.name)
                .await?;
            println!("{info}");
            Ok(())
        }
        Command::Domain(DomainCommand::Delete { target, yes }) => {
            ids2_provision::domain::check_name(&target.name)?;
            if !yes {
                return Err(DomainError::DeleteNeedsYes(target.name).into());
            }
            Domains::connect(&target.aws())
                .await?
                .delete(&target.name, yes)
                .await?;
            println!(
                "deletion of domain {} started; it takes several minutes (`domain status` shows progress)",
                target.name
            );
            Ok(())
        }
        Command::Opensearch(OpensearchCommand::Setup {
            conn,
            retention_days,
            replicas,
            dashboards_url,
            offline_after_secs,
            alert_webhook_url,
            alert_webhook_url_file,
            health,
            templates_only,
        }) => {
            let base = conn.base()?;
            let alert_webhook_url = match (alert_webhook_url, alert_webhook_url_file) {
                (Some(url), _) => Some(url),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(&file)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "cannot read the webhook URL file {}: {e}",
                                file.display()
                            )
                        })?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            let options = SetupOptions {
                dashboards_url: dashboards_url.unwrap_or_else(|| format!("{base}/_dashboards")),
                endpoint: base,
                index_prefix: conn.index_prefix.clone(),
                retention_days,
                replicas,
                offline_after_secs,
                alert_webhook_url,
                health: health.thresholds(),
                templates_only,
            };
            setup::check_options(&options)?;
            let rest = conn.rest(&options.endpoint).await?;
            let report = setup::setup(&rest, &options).await?;
            println!("{report}");
            Ok(())
        }
        Command::Tune { action, conn } => {
            let (base, rest) = conn.connect().await?;
            let prefix = &conn.index_prefix;
            let now = time::OffsetDateTime::now_utc();
            let new = match action {
                TuneCommand::List { offline_after_secs } => {
                    let text = tune::list(
                        &rest,
                        &base,
                        prefix,
                        Duration::from_secs(offline_after_secs),
                        now,
                    )
                    .await?;
                    print!("{text}");
                    return Ok(());
                }
                TuneCommand::Expire { id } => {
                    tune::expire(&rest, &base, prefix, &id, now).await?;
                    println!("expired {id}: sensors drop it at their next policy fetch");
                    return Ok(());
                }
                TuneCommand::Suppress { entry, track, ip } => tune_entry(
                    "suppress",
                    &entry,
                    serde_json::json!({"track": track, "ip": ip}),
                    now,
                )?,
                TuneCommand::Threshold {
                    entry,
                    kind,
                    track,
                    count,
                    seconds,
                } => tune_entry(
                    "threshold",
                    &entry,
                    serde_json::json!({"type": kind, "track": track, "count": count,
                                       "seconds": seconds}),
                    now,
                )?,
                TuneCommand::Disable { entry } => {
                    tune_entry("disable", &entry, serde_json::Value::Null, now)?
                }
                TuneCommand::Enable { entry } => {
                    tune_entry("enable", &entry, serde_json::Value::Null, now)?
                }
            };
            let id = tune::write(&rest, &base, prefix, &new, now).await?;
            println!(
                "wrote {id} ({} sid {} for {}): sensors in scope apply it at their next policy \
                 fetch (fleet.policy.interval_secs)",
                new.action, new.sid, new.scope
            );
            Ok(())
        }
        Command::Pcap(PcapCommand::Get {
            sensor,
            selector,
            out,
            ssh_port,
            identity,
            ssh_options,
            agent,
            agent_config,
        }) => {
            use ids2_provision::pcap::{Remote, Selector};
            let selector = match (selector.community_id, selector.flow_id, selector.alert) {
                (Some(id), _, _) => Selector::CommunityId(id),
                (_, Some(n), _) => Selector::FlowId(n),
                (_, _, Some(id)) => Selector::Alert(id),
                _ => unreachable!("clap requires exactly one selector"),
            };
            let remote = Remote {
                sensor,
                port: ssh_port,
                identity,
                options: ssh_options,
                agent,
                agent_config,
                ssh: "ssh".into(),
            };
            let bytes = remote.get(&selector, out.as_deref())?;
            if let Some(path) = &out {
                eprintln!("wrote {} ({bytes} bytes)", path.display());
            }
            Ok(())
        }
        Command::Fleet(FleetCommand::Health {
            conn,
            thresholds,
            json,
        }) => {
            let thresholds = thresholds.thresholds();
            let problems = thresholds.problems();
            if !problems.is_empty() {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!("{}", problems.join("; ")),
                });
            }
            let (base, rest) = conn.connect().await?;
            let now = time::OffsetDateTime::now_utc();
            let now_millis = (now.unix_timestamp_nanos() / 1_000_000) as i64;
            let findings =
                health::check_all(&rest, &base, &conn.index_prefix, &thresholds, now_millis)
                    .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&findings).expect("findings serialise")
                );
            } else {
                print!("{}", health::Report(&findings));
            }
            let alerting = findings.iter().filter(|f| !f.sensors.is_empty()).count();
            if alerting > 0 {
                return Err(Failure {
                    code: 3,
                    error: anyhow::anyhow!("{alerting} health check(s) alerting"),
                });
            }
            Ok(())
        }
        Command::Fleet(FleetCommand::Status {
            conn,
            json,
            offline_after_secs,
        }) => {
            let (base, rest) = conn.connect().await?;
            let sensors = ids2_provision::fleet::status(
                &rest,
                &base,
                &conn.index_prefix,
                Duration::from_secs(offline_after_secs),
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&sensors).expect("statuses serialise")
                );
            } else {
                println!("{}", ids2_provision::fleet::table(&sensors));
            }
            Ok(())
        }
        Command::Sensor(SensorCommand::Config {
            endpoint,
            sensor_id,
            sensor_name,
            out,
            force,
            region,
            domain,
            index_prefix,
            auth,
            profile,
            credentials_file,
            role_arn,
            username,
            password_file,
            interface,
            home_net,
        }) => {
            let auth = match auth {
                AuthMethod::Sigv4 => SensorAuth::SigV4 {
                    profile: Some(profile),
                    credentials_file: Some(credentials_file),
                    role_arn,
                },
                AuthMethod::Basic => SensorAuth::Basic {
                    username: username.unwrap_or_default(),
                    password_file: password_file.unwrap_or_default(),
                },
            };
            let options = SensorOptions {
                endpoint,
                sensor_id,
                sensor_name,
                region,
                domain,
                index_prefix,
                auth,
                interface,
                home_net,
            };
            let config = sensor::write(&options, &out, force)?;
            println!(
                "wrote {} for sensor {} (check it with `ids2-agent check-config {}`)",
                out.display(),
                config.sensor.id,
                out.display()
            );
            Ok(())
        }
    }
}

/// Progress on stderr: one line rewritten in place on a terminal, one line per change of
/// state otherwise (logs and CI stay readable).
fn progress_printer() -> impl FnMut(&DomainInfo, Duration) {
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    move |info, waited| {
        let state = info.state.to_string();
        let line = format!(
            "waiting for domain {}: {state}, {}m{:02}s elapsed",
            info.name,
            waited.as_secs() / 60,
            waited.as_secs() % 60
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else if state != last {
            eprintln!("{line}");
        }
        last = state;
    }
}

fn clear_progress_line() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, error }) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(code)
        }
    }
}
