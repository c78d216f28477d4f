//! A stage that wants the network: it imports `wasi:http`. The host must
//! refuse to load it, naming the import, before it ever runs.

use plugin_sdk::prelude::*;

mod http {
    // Only the import's name matters to the host's load-time check.
    wit_bindgen::generate!({
        inline: "
            package wasi:http@0.3.0;
            interface outgoing-handler {
                handle: func(url: string) -> u32;
            }
            world grab {
                import outgoing-handler;
            }
        ",
    });
}

struct NetGrab;

impl Stage for NetGrab {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "netgrab",
            env!("CARGO_PKG_VERSION"),
            "Reaches for the network",
        )
    }

    fn run(_input: Input) -> Result<Output, StageError> {
        let status = http::wasi::http::outgoing_handler::handle("https://example.com/");
        Ok(Output::new(format!("fetched: {status}")))
    }
}

plugin_sdk::export_stage!(NetGrab);
