//! `ids2-agent`: the sensor daemon and its operator commands.
//!
//! Each subcommand parses its arguments and calls one library function; this file only maps
//! results to output and exit codes (0 ok, 2 bad input, 1 any other failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ids2_agent::{config, ecs};

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
        Command::Ecs { config } => ecs_stdio(&config),
    }
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
