//! The `lunasip` command: run the proxy, check a script, print the version.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lunasip::script::{Source, DEFAULT_SCRIPT};

/// Default script path of an installed lunasip.
const DEFAULT_PATH: &str = "/etc/lunasip/lunasip.lua";

#[derive(Parser)]
#[command(
    name = "lunasip",
    about = "A SIP proxy whose routes are Lua scripts",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy (default script: /etc/lunasip/lunasip.lua, else the embedded default).
    Run {
        /// The Lua script with `config` and the routes.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Overrides config.log_level (error, warn, notice, info, debug).
        #[arg(long = "log-level")]
        log_level: Option<String>,
    },
    /// Load a script and check it; exits non-zero with file:line on error.
    Check {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
}

fn read(path: &Path) -> Result<Source, String> {
    let code = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        code,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Version => {
            println!("lunasip {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Cmd::Check { config } => read(&config).and_then(|src| {
            lunasip::script::check::check(&src).map_err(|e| e.to_string())?;
            println!("{}: ok", src.name);
            Ok(())
        }),
        Cmd::Run { config, log_level } => {
            let (src, from_default) = match config {
                Some(p) => (read(&p), false),
                None if Path::new(DEFAULT_PATH).exists() => (read(Path::new(DEFAULT_PATH)), false),
                None => (
                    Ok(Source {
                        name: "default.lua".into(),
                        code: DEFAULT_SCRIPT.into(),
                    }),
                    true,
                ),
            };
            src.and_then(|s| lunasip::runtime::run(s, log_level.as_deref(), from_default))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lunasip: {e}");
            ExitCode::FAILURE
        }
    }
}
