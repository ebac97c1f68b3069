//! `ids2-agent`: the sensor daemon and its operator commands.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ids2_agent::render::{Profile, RenderOptions};
use ids2_agent::{anomaly, apply, config, ecs, net, render, systemd};

/// The ids2 sensor agent.
#[derive(Parser)]
#[command(name = "ids2-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config.yaml and report every problem in it at once.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Map EVE JSON lines on stdin to ECS JSON lines on stdout with the sensor's VRL program.
    /// Lines that are not valid EVE are reported on stderr ("line N: reason") and skipped;
    /// exit 0 when every line mapped, 1 when some failed, 2 for a bad config.
    Ecs {
        /// The config file whose sensor identity and HOME_NET the program embeds.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
    },
    /// Run the daemon: supervise Suricata and Vector, throttle, check connectivity, serve metrics.
    Run {
        /// The config file (watched: a change is re-validated and applied).
        #[arg(long)]
        config: PathBuf,
        /// How Suricata and Vector are run: `process` (children) or `systemd` (units).
        #[arg(long, default_value = "process")]
        backend: ids2_agent::run::BackendKind,
        /// Suricata's config directory (classification.config, reference.config, threshold.config).
        #[arg(long, value_name = "DIR", env = "IDS2_SURICATA_ETC", default_value = render::DEFAULT_SURICATA_ETC)]
        suricata_etc: PathBuf,
    },
    /// Print the `--config` arguments Vector starts with beyond `vector.toml`, one per line:
    /// the Redis copy's `vector-redis.toml` when the current generation has one and Redis
    /// answers PING, else nothing (the reason on stderr). vector.service's start script runs
    /// this; the agent restarts Vector with the copy once Redis answers.
    VectorArgs {
        /// The directory of generations (paths.rendered_dir).
        #[arg(long, default_value_os_t = PathBuf::from(config::default_rendered_dir()))]
        rendered_dir: PathBuf,
    },
    /// Host links: keep only lo and the capture interface up (rtnetlink, this namespace).
    #[command(subcommand)]
    Net(NetCommand),
    /// Render suricata.yaml, vector.toml and the local rules into DIR as a new generation,
    /// check them with `suricata -T`, then switch DIR/current to them atomically.
    Render {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// The directory of generations (DIR/generations/<N>, DIR/current).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        render: RenderArgs,
    },
    /// Render and switch like `render` (into paths.rendered_dir unless --out is given), then
    /// commit the active files to the history repository and push them to history.remote.
    Apply {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
        /// The directory of generations; defaults to the config's paths.rendered_dir.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        render: RenderArgs,
    },
    /// The log tmpfs (logs.path, logs.size_mb), mounted through systemd.
    Ramdisk {
        #[command(subcommand)]
        action: RamdiskAction,
    },
    /// systemd units.
    Unit {
        #[command(subcommand)]
        action: UnitAction,
    },
    /// The Suricata rule set (fleet.rules).
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// The fleet policy: suppressions and thresholds from OpenSearch (fleet.policy).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Threat-intelligence indicator feeds (intel.presets, intel.feeds).
    Intel {
        #[command(subcommand)]
        action: IntelAction,
    },
    /// Anomaly detection on EVE flow records (Isolation Forest).
    Anomaly {
        #[command(subcommand)]
        action: AnomalyAction,
    },
    /// Packet evidence: the pcaps of alerted flows kept in evidence.store_dir.
    Pcap {
        #[command(subcommand)]
        action: PcapAction,
    },
}

#[derive(Subcommand)]
enum PcapAction {
    /// Show the kept flows: community id, flow ids, addresses, first and last packet, packets,
    /// bytes and the alerts that pinned each.
    List {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
        /// One JSON object per flow instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write one flow's evidence pcap; exit 2 when the store has no such flow.
    Get {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
        #[command(flatten)]
        which: PcapWhich,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which flow: exactly one of the three.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct PcapWhich {
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

#[derive(Subcommand)]
enum RulesAction {
    /// Download the configured sources with suricata-update, check the set with `suricata -T`,
    /// swap it in, record it in the history and reload the running Suricata; on any failure
    /// the previous rules stay active.
    Update {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Fetch the policy entries covering this sensor from OpenSearch, skip (and name) invalid
    /// ones, render Suricata's threshold.config, check it with `suricata -T`, swap it in,
    /// record it in the history and reload the running Suricata; on any failure the last good
    /// policy stays active.
    Update {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum IntelAction {
    /// Download every feed, drop invalid and allowlisted entries, compile them into Suricata
    /// datasets and rules, check them with `suricata -T`, swap them in, record the change in
    /// the history and load it into the running Suricata without a restart. A feed that fails
    /// keeps its last good version (exit 1 after the others are installed).
    Update {
        /// The config file.
        #[arg(long, default_value = "/etc/ids2/config.yaml")]
        config: PathBuf,
        /// Only the feeds whose interval is due (what the daemon's schedule does).
        #[arg(long)]
        due: bool,
    },
}

#[derive(Subcommand)]
enum AnomalyAction {
    /// Train a model on every `flow` record of an EVE file and write it to MODEL.
    Train {
        /// EVE JSON lines (other event types are skipped).
        #[arg(long)]
        eve: PathBuf,
        /// The model file to write.
        #[arg(long, value_name = "MODEL")]
        out: PathBuf,
        /// Trees in the forest (1 to 1000).
        #[arg(long, default_value_t = config::default_anomaly_trees(),
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        trees: u32,
        /// Flows sampled per tree (at least 2).
        #[arg(long, default_value_t = config::default_anomaly_sample_size(),
              value_parser = clap::value_parser!(u32).range(2..=65_536))]
        sample_size: u32,
        /// RNG seed (training is reproducible from it).
        #[arg(long, default_value_t = anomaly::DEFAULT_SEED)]
        seed: u64,
    },
    /// Score every `flow` record of an EVE file; print anomalies as JSON lines (the shipped
    /// documents) and a summary on stderr.
    Score {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// EVE JSON lines.
        #[arg(long)]
        eve: PathBuf,
        /// Score at or above which a flow is printed.
        #[arg(long, default_value_t = config::default_anomaly_threshold())]
        threshold: f64,
    },
    /// Print the feature matrix of an EVE file's flows as CSV (with a score column when a
    /// model is given).
    Features {
        /// EVE JSON lines.
        #[arg(long)]
        eve: PathBuf,
        /// A model whose score is appended to each row.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RamdiskAction {
    /// Mount the log tmpfs as a transient systemd mount unit unless it is already mounted.
    Ensure {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// D-Bus address of systemd's bus (default: the system bus).
        #[arg(long)]
        bus: Option<String>,
        /// A process in the mount namespace that systemd manages, when it is not ours
        /// (e.g. a container's PID 1); the mount is verified through /proc/PID.
        #[arg(long)]
        target_pid: Option<u32>,
    },
}

#[derive(Subcommand)]
enum UnitAction {
    /// Show a unit's load, active and sub state, main PID, result and resource limits.
    Status {
        /// The unit name, e.g. suricata.service.
        name: String,
        /// D-Bus address of systemd's bus (default: the system bus).
        #[arg(long)]
        bus: Option<String>,
    },
}

#[derive(Subcommand)]
enum NetCommand {
    /// Show links, addresses and the default gateway; with --config, what apply would change.
    Status {
        /// The config file whose capture interface the plan is made for.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Set every link but lo and the capture interface down, under the rollback guard.
    Apply {
        /// The config file (capture.interface, network.*).
        #[arg(long)]
        config: PathBuf,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Options shared by `render` and `apply`.
#[derive(Args)]
struct RenderArgs {
    /// A directory whose files replace the built-in templates of the same name
    /// (suricata.yaml.tera, vector.toml.tera, ecs.vrl.tera, rules/ids2.rules).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Skip the `suricata -T` check.
    #[arg(long)]
    no_validate: bool,
    /// Suricata's config directory (classification.config, reference.config, threshold.config).
    #[arg(long, value_name = "DIR", env = "IDS2_SURICATA_ETC", default_value = render::DEFAULT_SURICATA_ETC)]
    suricata_etc: PathBuf,
    /// EVE output profile: full, reduced (no flow/netflow/fileinfo) or alerts-only.
    #[arg(long, default_value_t = Profile::Full)]
    profile: Profile,
}

impl RenderArgs {
    fn options(&self) -> RenderOptions {
        RenderOptions {
            profile: self.profile,
            templates_dir: self.templates.clone(),
            suricata_etc: self.suricata_etc.clone(),
            rendered_dir: None,
        }
    }

    fn validator(&self) -> anyhow::Result<apply::Validator> {
        if self.no_validate {
            eprintln!("warning: --no-validate: skipped the `suricata -T` check");
            return Ok(apply::Validator::Skip);
        }
        let validator = apply::Validator::detect()?;
        if validator == apply::Validator::Skip {
            eprintln!(
                "warning: suricata is not installed (set {} or add it to PATH): skipped the \
                 `suricata -T` check",
                ids2_agent::suricata::BINARY_ENV
            );
        }
        Ok(validator)
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
            .downcast_ref::<config::ConfigError>()
            .is_some_and(config::ConfigError::is_bad_input)
            || cause
                .downcast_ref::<apply::ApplyError>()
                .is_some_and(apply::ApplyError::is_bad_input)
            || cause
                .downcast_ref::<systemd::SystemdError>()
                .is_some_and(systemd::SystemdError::is_bad_input)
            || cause
                .downcast_ref::<anomaly::AnomalyError>()
                .is_some_and(anomaly::AnomalyError::is_bad_input)
    })
}

/// Loads the config (exit 2 before anything is touched if it is bad), then renders and swaps.
fn render_into(
    config: &std::path::Path,
    out: Option<PathBuf>,
    args: &RenderArgs,
    record: bool,
) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .with_target(false)
        .try_init();
    let settings = config::load(config)?;
    let out = out.unwrap_or_else(|| PathBuf::from(&settings.config.paths.rendered_dir));
    let validator = args.validator()?;
    let (outcome, applied) = if record {
        let applied = apply::apply(&settings, &args.options(), &out, &validator)?;
        (applied.outcome.clone(), Some(applied))
    } else {
        let outcome = apply::render_to(&settings, &args.options(), &out, &validator)?;
        (outcome, None)
    };
    match outcome {
        apply::Outcome::Changed { generation } => println!(
            "{}: generation {generation} is current ({})",
            out.display(),
            out.join(apply::CURRENT).display()
        ),
        apply::Outcome::Unchanged => println!(
            "{}: unchanged (the rendered files equal the current generation)",
            out.display()
        ),
    }
    if let Some(applied) = applied {
        let repo = &settings.config.history.repo;
        match &applied.commit {
            Some(commit) => println!("history {repo}: committed {}", commit.id),
            None => println!("history {repo}: no change to record"),
        }
        if let Some(e) = &applied.push_error {
            eprintln!("warning: {e}");
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::CheckConfig { file } => {
            let settings = config::load(&file)?;
            println!(
                "{}: ok (sensor {}, capture on {})",
                file.display(),
                settings.config.sensor.id,
                settings.config.capture.interface
            );
            Ok(())
        }
        Command::Net(NetCommand::Status { config }) => {
            let settings = config.as_deref().map(config::load).transpose()?;
            println!("{}", block_on(net::status(settings.as_ref()))?);
            Ok(())
        }
        Command::Net(NetCommand::Apply { config, dry_run }) => {
            let settings = config::load(&config)?;
            println!("{}", block_on(net::apply_settings(&settings, dry_run))?);
            Ok(())
        }
        Command::Render {
            config,
            out,
            render,
        } => Ok(render_into(&config, Some(out), &render, false)?),
        Command::Apply {
            config,
            out,
            render,
        } => Ok(render_into(&config, out, &render, true)?),
        Command::Ramdisk {
            action:
                RamdiskAction::Ensure {
                    config: file,
                    bus,
                    target_pid,
                },
        } => {
            let settings = config::load(&file)?;
            let outcome = block_on(systemd::ensure_log_tmpfs(
                &settings,
                bus.as_deref(),
                target_pid,
            ))?;
            println!(
                "{} ({} MiB tmpfs, mode 0750): {outcome}",
                settings.config.logs.path, settings.config.logs.size_mb
            );
            Ok(())
        }
        Command::Unit {
            action: UnitAction::Status { name, bus },
        } => {
            println!("{}", block_on(systemd::unit_status(&name, bus.as_deref()))?);
            Ok(())
        }
        Command::Run {
            config,
            backend,
            suricata_etc,
        } => Ok(ids2_agent::run::run(&config, backend, suricata_etc)?),
        Command::Ecs { config } => ecs_stdio(&config),
        Command::VectorArgs { rendered_dir } => {
            let copy = ids2_agent::vector::RedisCopy::new(&rendered_dir);
            // Not ready is an answer, printed, not a failure: Vector starts either way.
            match block_on(async { anyhow::Ok(copy.start_args().await) })? {
                Ok(args) => args
                    .iter()
                    .for_each(|a| println!("{}", a.to_string_lossy())),
                Err(why) => eprintln!("ids2-agent: {why}"),
            }
            Ok(())
        }
        Command::Rules {
            action: RulesAction::Update { config },
        } => rules_update(&config),
        Command::Policy {
            action: PolicyAction::Update { config },
        } => policy_update(&config),
        Command::Intel {
            action: IntelAction::Update { config, due },
        } => intel_update(&config, due),
        Command::Anomaly { action } => anomaly_command(action),
        Command::Pcap { action } => pcap_command(action),
    }
}

fn pcap_command(action: PcapAction) -> Result<(), Failure> {
    use ids2_agent::evidence::{self, store::Lookup};
    match action {
        PcapAction::List { config, json } => {
            let store = evidence::store_of(&config::load(&config)?);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            evidence::write_list(&store.list()?, json, &mut out)?;
            std::io::Write::flush(&mut out)?;
        }
        PcapAction::Get { config, which, out } => {
            let store = evidence::store_of(&config::load(&config)?);
            let lookup = match (which.community_id, which.flow_id, which.alert) {
                (Some(c), _, _) => Lookup::CommunityId(c),
                (_, Some(f), _) => Lookup::FlowId(f),
                (_, _, Some(a)) => Lookup::Alert(a),
                _ => unreachable!("clap requires one of the group"),
            };
            let Some(entry) = store.find(&lookup)? else {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!(
                        "no evidence for {lookup} in {} (`ids2-agent pcap list` shows what is \
                         kept)",
                        store.dir.display()
                    ),
                });
            };
            let path = store.pcap_path(&entry);
            let mut pcap = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match out {
                Some(file) => {
                    let mut f = std::fs::File::create(&file)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    std::io::copy(&mut pcap, &mut f)?;
                }
                None => {
                    std::io::copy(&mut pcap, &mut std::io::stdout().lock())?;
                }
            }
        }
    }
    Ok(())
}

fn ecs_stdio(config_path: &std::path::Path) -> Result<(), Failure> {
    let settings = config::load(config_path)?;
    let mut mapper = ecs::Mapper::new(&settings)?;
    let stdout = std::io::stdout();
    let summary = ecs::map_stream(
        &mut mapper,
        std::io::stdin().lock(),
        std::io::BufWriter::new(stdout.lock()),
        std::io::stderr().lock(),
    )?;
    if summary.failed > 0 {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{} of {} lines were not valid EVE and were skipped",
                summary.failed,
                summary.failed + summary.mapped
            ),
        });
    }
    Ok(())
}

fn anomaly_command(action: AnomalyAction) -> Result<(), Failure> {
    match action {
        AnomalyAction::Train {
            eve,
            out,
            trees,
            sample_size,
            seed,
        } => {
            let params = anomaly::TrainParams {
                trees: trees as usize,
                sample_size: sample_size as usize,
                seed,
            };
            let model = anomaly::train_file(&eve, &out, params)?;
            println!(
                "{}: trained on {} flows ({} trees, {} samples each)",
                out.display(),
                model.trained_flows,
                model.params.trees,
                model.params.sample_size
            );
        }
        AnomalyAction::Score {
            model,
            eve,
            threshold,
        } => {
            if !(threshold > 0.0 && threshold <= 1.0) {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!(
                        "--threshold must be a score in (0, 1], got {threshold}"
                    ),
                });
            }
            let mut stdout = std::io::stdout().lock();
            let s = anomaly::score_file(&model, &eve, threshold, &mut stdout)?;
            eprintln!("scored {} flows: {} anomalies", s.flows, s.anomalies);
        }
        AnomalyAction::Features { eve, model } => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            anomaly::features_csv(&eve, model.as_deref(), &mut stdout)?;
            std::io::Write::flush(&mut stdout)?;
        }
    }
    Ok(())
}

/// `rules update`: prints the outcome; any failure leaves the previous rules active (exit 1).
fn rules_update(config: &std::path::Path) -> Result<(), Failure> {
    let settings = config::load(config)?;
    let metrics = ids2_agent::metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
    let updater = ids2_agent::fleet::RuleUpdater::for_settings(&settings)?;
    println!("{}", updater.update_recorded(&metrics)?);
    Ok(())
}

/// `policy update`: prints the outcome; skipped entries go to stderr (the rest applied).
fn policy_update(config: &std::path::Path) -> Result<(), Failure> {
    let settings = std::sync::Arc::new(config::load(config)?);
    let metrics = ids2_agent::metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
    let updater = ids2_agent::fleet::policy::PolicyUpdater::for_settings(settings)?;
    let report = block_on(updater.update_recorded(&metrics))?;
    for s in &report.skipped {
        eprintln!("skipped {s}");
    }
    println!("{report}");
    Ok(())
}

/// `intel update`: prints each feed's outcome; exit 1 when a feed failed (it keeps its last
/// good version) or the update failed as a whole (every feed keeps it).
fn intel_update(config: &std::path::Path, due: bool) -> Result<(), Failure> {
    let settings = config::load(config)?;
    let updater = ids2_agent::intel::feeds::FeedUpdater::for_settings(&settings)?;
    let report = block_on(updater.update(!due))?;
    println!("{report}");
    match report.failed() {
        0 => Ok(()),
        n => Err(Failure {
            code: 1,
            error: anyhow::anyhow!("{n} feed(s) failed and kept their last good version"),
        }),
    }
}

/// Runs one command's future; the commands are short, so a current-thread runtime suffices.
fn block_on<T, E: Into<anyhow::Error>>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(future).map_err(Into::into)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
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
