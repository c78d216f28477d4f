//! `host plugin check FILE.wasm`: what a component is, and whether this host
//! can run it.

use super::{Exit, Globals};
use host::bindings::{WIT_PACKAGE, WIT_VERSION};
use host::runtime::Runtime;
use std::path::Path;

pub async fn check(globals: &Globals, path: &Path, json: bool) -> Exit {
    let runtime = match Runtime::new(globals.cache_dir.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e:#}");
            return Exit::HostError;
        }
    };
    let report = match runtime.inspect(path).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let compatible = report.info.is_ok();
    if json {
        println!(
            "{}",
            serde_json::json!({ "report": report, "compatible": compatible, "host_wit": format!("{WIT_PACKAGE}@{WIT_VERSION}") })
        );
    } else {
        println!("{}", report.path.display());
        println!(
            "  size: {:.1} KiB, blake3 {}",
            report.size as f64 / 1024.0,
            &report.hash[..16]
        );
        println!(
            "  built against: {}",
            report
                .wit_version
                .as_deref()
                .map_or("no orchestrator:stage interface".to_string(), |v| format!(
                    "{WIT_PACKAGE}@{v}"
                ))
        );
        println!("  this host implements: {WIT_PACKAGE}@{WIT_VERSION}");
        println!("  imports:");
        for i in &report.imports {
            match &i.refused {
                None => println!("    {:<44} {}", i.name, i.governed_by),
                Some(why) => println!("    {:<44} REFUSED: {why}", i.name),
            }
        }
        println!("  exports: {}", report.exports.join(", "));
        match &report.info {
            Ok(info) => {
                println!(
                    "  info: {} {}: {}",
                    info.name, info.version, info.description
                );
                println!("  compatible: yes");
            }
            Err(why) => println!("  compatible: no\n  {why}"),
        }
    }
    if compatible {
        Exit::Success
    } else {
        Exit::InvalidInput
    }
}
