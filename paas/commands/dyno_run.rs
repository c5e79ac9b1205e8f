//! `paas dyno-run COMMAND`: what `paas up` runs each dyno through. It asks the kernel to signal
//! it when `paas` (its parent) dies, for any reason, SIGKILL included, and then kills the
//! dyno's whole process group; otherwise it runs `sh -c COMMAND` in the same group, leaves
//! SIGTERM to the command (the platform sends it to the whole group), and exits with the
//! command's status (128 + N for a signal, as a shell says).

use std::process::ExitCode;

use anyhow::Context;
use rustix::process::{
    Signal, getpgrp, getppid, kill_process_group, set_parent_process_death_signal,
};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Procfile command.
    command: String,
}

/// Ends the dyno: everything in its group, this process included.
fn kill_dyno() {
    let _ = kill_process_group(getpgrp(), Signal::KILL);
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let parent = getppid();
    set_parent_process_death_signal(Some(Signal::USR1))
        .context("asking for the parent's death signal")?;
    // The parent may have died before the request took effect: then no signal comes.
    if getppid() != parent {
        kill_dyno();
        return Ok(ExitCode::FAILURE);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut parent_gone = signal(SignalKind::user_defined1())?;
        // Handled, so that the platform's SIGTERM to the group is the command's to act on.
        let mut term = signal(SignalKind::terminate())?;
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &args.command])
            .spawn()
            .context("starting sh")?;
        loop {
            tokio::select! {
                status = child.wait() => {
                    use std::os::unix::process::ExitStatusExt as _;
                    let status = status?;
                    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
                    return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                }
                _ = parent_gone.recv() => kill_dyno(),
                _ = term.recv() => {}
            }
        }
    })
}
