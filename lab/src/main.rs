//! `ids2-lab`: the lab (a virtual LAN attacked by the emulator, watched by the real sensor) and
//! the adversary emulator, for developers' and evaluators' Linux machines.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ids2_lab::{emulate, LabError, LabOptions};

/// The ids2 lab and adversary emulator (never installed on a sensor).
#[derive(Parser)]
#[command(name = "ids2-lab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the lab (root): attacker, victim and sensor namespaces, Suricata on the sensor's
    /// eth0, the scenarios, a live detection table; everything removed at the end or on Ctrl-C.
    Run {
        /// Total run time in seconds (the scenarios always finish first).
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// A scenario file instead of the built-in set (templates/scenarios/default.json).
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Where to write the ECS documents of the alerts (JSON lines).
        #[arg(long)]
        archive: Option<PathBuf>,
        /// Where the agent's /metrics endpoint listens during the lab (port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        metrics_listen: std::net::SocketAddr,
        /// The ids2-agent binary run as the sensor (default: the one beside ids2-lab, else
        /// the first on PATH).
        #[arg(long, value_name = "PATH", env = ids2_lab::AGENT_ENV)]
        agent: Option<PathBuf>,
    },
    /// Send the attack traffic of a scenario file (bounded; loopback and the lab subnet only,
    /// unless --allow-target widens that).
    Emulate {
        /// The scenario file (JSON array of technique entries).
        scenarios: PathBuf,
        /// The target of entries that name none.
        #[arg(long)]
        target: Option<std::net::IpAddr>,
        /// Also allow targets in this network (repeatable). Only for networks you own.
        #[arg(long, value_name = "CIDR")]
        allow_target: Vec<ipnet::IpNet>,
    },
    /// Replay each capture of a set through the rendered config (the real Suricata with the
    /// rendered suricata.yaml and ids2 rules, each capture a run of its own, then the agent's
    /// behavioural detector over its EVE) and print per capture whether it was detected and by which rules. A set is a
    /// directory with `manifest.jsonl` (bench/realtools.sh writes one) or of pcaps alone (all
    /// taken as benign). Exit 1 when an attack was missed or a benign capture alerted.
    Eval {
        /// The capture set's directory.
        set: PathBuf,
        /// The sensor config to render (default: the lab's sensor config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep the rendered files and each capture's EVE output in this directory (default:
        /// a temp dir, removed).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
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
            .downcast_ref::<emulate::EmulateError>()
            .is_some_and(emulate::EmulateError::is_bad_input)
            || cause
                .downcast_ref::<LabError>()
                .is_some_and(LabError::is_bad_input)
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Emulate {
            scenarios,
            target,
            allow_target,
        } => emulate::run_file(&scenarios, target, &allow_target)
            .map(drop)
            .map_err(Into::into),
        Command::Run { .. } if !nix::unistd::geteuid().is_root() => Err(rerun_as_root()),
        Command::Run {
            duration,
            scenarios,
            archive,
            metrics_listen,
            agent,
        } => lab_command(duration, scenarios, archive, metrics_listen, agent),
        Command::Eval { set, config, keep } => eval_command(&set, config.as_deref(), keep),
    }
}

/// What the lab reads from its environment, kept across sudo (which resets the environment).
const PRESERVED_ENV: &[&str] = &[
    ids2_lab::AGENT_ENV,
    ids2_agent::suricata::BINARY_ENV,
    ids2_agent::vector::PROGRAM_ENV,
    ids2_lab::osmem::BINARY_ENV,
    "RUST_LOG",
];

/// The lab needs root (network namespaces, raw sockets). A user who can sudo is asked for it
/// rather than sent back: the same command runs again under sudo, replacing this process, so
/// the same quick-start line works in a root shell and for such a user. Returns only on failure.
fn rerun_as_root() -> Failure {
    let Some(sudo) = ids2_agent::files::find_program("sudo") else {
        return LabError::NotRoot.into();
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return anyhow::Error::new(e)
                .context("cannot find ids2-lab's own path")
                .into()
        }
    };
    let keep: Vec<&str> = PRESERVED_ENV
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    let mut sudo = std::process::Command::new(sudo);
    if !keep.is_empty() {
        sudo.arg(format!("--preserve-env={}", keep.join(",")));
    }
    sudo.arg("--").arg(exe).args(std::env::args_os().skip(1));
    eprintln!(
        "ids2-lab: the lab needs root (network namespaces, raw sockets): running it with sudo"
    );
    anyhow::Error::new(sudo.exec())
        .context("cannot run sudo")
        .into()
}

/// Prints the detection table; a missed attack or a benign alert is exit 1.
fn eval_command(
    set: &std::path::Path,
    config_path: Option<&std::path::Path>,
    keep: Option<PathBuf>,
) -> Result<(), Failure> {
    let captures = ids2_lab::eval::load_set(set)?;
    let suricata = ids2_agent::suricata::Suricata::locate()?.ok_or(LabError::NoSuricata)?;
    let temp = tempfile::Builder::new().prefix("ids2-eval-").tempdir()?;
    let work = match keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => temp.path().to_path_buf(),
    };
    let settings = match config_path {
        Some(path) => ids2_agent::config::load(path)?,
        None => ids2_lab::lab_settings(&work, &work.join("archive.jsonl"), 2)?,
    };
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = ids2_lab::eval::evaluate(&suricata, &settings, &captures, &work, jobs)?;
    print!("{}", report.table());
    if report.passed() {
        return Ok(());
    }
    let (found, attacks) = report.attacks();
    let (fp, _) = report.false_positives();
    let unread = report.outcomes.iter().filter(|o| o.error.is_some()).count();
    Err(anyhow::anyhow!(
        "{} attack capture(s) missed, {fp} benign capture(s) alerted, {unread} unread",
        attacks - found
    )
    .into())
}

/// Runs the lab; a scenario the sensor missed is a failure (exit 1).
fn lab_command(
    duration: u64,
    scenarios: Option<PathBuf>,
    archive: Option<PathBuf>,
    metrics_listen: std::net::SocketAddr,
    agent: Option<PathBuf>,
) -> Result<(), Failure> {
    let report = ids2_lab::run(&LabOptions {
        duration: std::time::Duration::from_secs(duration),
        scenarios,
        archive,
        print: true,
        metrics_listen,
        agent: ids2_lab::locate_agent(agent)?,
    })?;
    let missed = report.rows.iter().filter(|r| r.latency.is_none()).count();
    if missed > 0 || !report.baseline_alerts.is_empty() {
        return Err(anyhow::anyhow!(
            "{missed} scenario(s) not detected, {} false positive(s) on the benign baseline",
            report.baseline_alerts.len()
        )
        .into());
    }
    Ok(())
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
