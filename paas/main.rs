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
    raise_open_files_limit();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("paas: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit (or, when that is unlimited, to the
/// kernel's `fs.nr_open`): every client connection, dyno pipe and drain socket is a file, and
/// the soft limit is often 1024 while the hard one is far higher. Past it accepts fail, and
/// the listeners back off and say so.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let most = limit.maximum.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|n| n.trim().parse().ok())
    });
    let Some(most) = most.filter(|most| limit.current.is_some_and(|now| now < *most)) else {
        return;
    };
    let raised = rustix::process::Rlimit {
        current: Some(most),
        ..limit
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        tracing::debug!("raising the open files limit to {most}: {e}");
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
