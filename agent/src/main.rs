//! `ids2-agent`: the sensor daemon and its operator commands.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ids2_agent::{config, systemd};

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
                .downcast_ref::<systemd::SystemdError>()
                .is_some_and(systemd::SystemdError::is_bad_input)
    })
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
