//! `paas example-app web|worker`: the example app's processes (the built-in app's Procfile
//! runs these, so that the app is built with paas itself).

use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `web` (serves $PORT) or `worker`.
    #[arg(value_parser = ["web", "worker"])]
    process: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::commands::runtime()?.block_on(async {
        match args.process.as_str() {
            "web" => {
                let port: u16 = std::env::var("PORT")
                    .context("the web process needs PORT")?
                    .parse()
                    .context("PORT is not a port number")?;
                example_app::web(port).await?;
            }
            _ => example_app::worker().await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
