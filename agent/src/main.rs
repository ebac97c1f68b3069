//! `ids2-agent`: the sensor daemon and its operator commands.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ids2_agent::{config, net};

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
    /// Host links: keep only lo and the capture interface up (rtnetlink, this namespace).
    #[command(subcommand)]
    Net(NetCommand),
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
        Command::Net(NetCommand::Status { config }) => {
            let settings = config.as_deref().map(config::load).transpose()?;
            println!("{}", runtime()?.block_on(net::status(settings.as_ref()))?);
            Ok(())
        }
        Command::Net(NetCommand::Apply { config, dry_run }) => {
            let settings = config::load(&config)?;
            println!(
                "{}",
                runtime()?.block_on(net::apply_settings(&settings, dry_run))?
            );
            Ok(())
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
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
