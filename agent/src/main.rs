//! `ids2-agent`: the sensor daemon and its operator commands.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ids2_agent::config;

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
    /// Run the daemon: supervise Suricata and Vector, throttle, check connectivity, serve metrics.
    Run {
        /// The config file (watched: a change is re-validated and applied).
        #[arg(long)]
        config: PathBuf,
        /// How Suricata and Vector are run: `process` (children) or `systemd` (units).
        #[arg(long, default_value = "process")]
        backend: ids2_agent::run::BackendKind,
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
        Command::Run { config, backend } => Ok(ids2_agent::run::run(&config, backend)?),
    }
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
