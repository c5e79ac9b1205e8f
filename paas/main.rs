//! `paas`: the one binary. `paas logplex` runs the router; `paas logs`, `paas apps`, `paas
//! tokens` talk to its API; `paas logfmt` reads logfmt locally. `paas up`, `paas drains`,
//! `paas query`, `paas ps` and `paas scale` arrive with the stack, drains and query.

mod commands;

use std::process::ExitCode;

use clap::Parser;

/// A Logplex-style log router with the platform stack that feeds it.
#[derive(Debug, Parser)]
#[command(name = "paas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The program's own diagnostics, on standard error: warnings unless RUST_LOG says more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("paas: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
