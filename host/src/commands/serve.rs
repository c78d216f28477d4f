//! `host serve`: the dashboard and the JSON API over a state directory.

use super::{Exit, Failure, Globals, Outcome};
use host::serve::ServeError;
use std::io::Write;
use std::net::SocketAddr;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. The URL is printed first.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// Allow a non-loopback address: anyone who can reach it sees every run.
    #[arg(long)]
    public: bool,
}

pub async fn serve(globals: &Globals, args: ServeArgs) -> Outcome {
    let state_dir = globals.state_dir(None);
    let listener = host::serve::bind(args.addr, args.public)
        .await
        .map_err(|e| match e {
            ServeError::NotLoopback(_) => Failure::invalid(e),
            e => Failure::host(e),
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::host(format!("cannot tell the address bound: {e}")))?;
    // The URL first, alone on its line: scripts and tests read it (port 0
    // picks a free port).
    println!("http://{bound}/");
    let _ = std::io::stdout().flush();
    eprintln!("serving {} (Ctrl-C stops)", state_dir.display());
    tokio::select! {
        () = host::serve::serve(listener, state_dir) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Exit::Success)
}
