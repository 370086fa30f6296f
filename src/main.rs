//! `podrun`: parse the command line, set up logging, run, map errors to an exit status.

use std::io::IsTerminal;

use clap::Parser;

fn main() {
    let cli = podrun::cli::Cli::parse();
    if !cli.keeps_sigpipe_ignored() {
        podrun::sys::default_sigpipe();
    }
    // rustls-platform-verifier logs an untrusted certificate as an ERROR of its own: the
    // pull's error says it, naming the registry and where its CA goes.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODRUN_LOG")
        .unwrap_or_else(|_| "warn,rustls_platform_verifier=off".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !cli.may_fork_supervisors())
        .init();
    match podrun::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
