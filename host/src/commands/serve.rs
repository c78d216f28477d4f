//! `host serve`: the dashboard and the JSON API over a state directory.

use super::{Exit, Globals};
use std::io::Write;
use std::net::SocketAddr;

pub async fn serve(globals: &Globals, addr: SocketAddr, public: bool) -> Exit {
    let state_dir = globals.state_dir(None);
    let listener = match host::serve::bind(addr, public).await {
        Ok(l) => l,
        Err(e @ host::serve::ServeError::NotLoopback(_)) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::HostError;
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot tell the address bound: {e}");
            return Exit::HostError;
        }
    };
    // The URL first, alone on its line: scripts and tests read it (port 0
    // picks a free port).
    println!("http://{bound}/");
    let _ = std::io::stdout().flush();
    eprintln!("serving {} (Ctrl-C stops)", state_dir.display());
    tokio::select! {
        () = host::serve::serve(listener, state_dir) => Exit::Success,
        _ = tokio::signal::ctrl_c() => Exit::Success,
    }
}
