//! `host plugin check FILE.wasm`: what a component is, and whether this host
//! can run it; `host plugin new`: a new plugin project.

use super::{Exit, Globals};
use host::capabilities::Runtime;
use host::runtime::bindings::{WIT_ACCEPTED, WIT_PACKAGE, WIT_VERSION};
use host::scaffold::{self, Lang};
use std::path::{Path, PathBuf};

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
            serde_json::json!({
                "report": report,
                "compatible": compatible,
                "host_wit": format!("{WIT_PACKAGE}@{WIT_VERSION}"),
                "host_accepts": WIT_ACCEPTED,
            })
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
        println!("  this host implements: {WIT_PACKAGE}@{WIT_VERSION} (runs {WIT_ACCEPTED})");
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
                match &info.capabilities {
                    Some(needs) => {
                        println!("  capabilities (checked against each stage by `host validate`):");
                        for line in needs.lines() {
                            println!("    {line}");
                        }
                    }
                    None => println!(
                        "  capabilities: undeclared (orchestrator:stage 0.1 cannot declare them)"
                    ),
                }
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

/// `host plugin new NAME --lang LANG [--dir DIR] [--sdk PATH]`.
pub fn new(name: &str, lang: Lang, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Exit {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.unwrap_or_else(scaffold::default_sdk);
    let created = match scaffold::create(name, lang, &dir, &sdk) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    println!(
        "created {} plugin '{name}' in {} (WIT {WIT_PACKAGE}@{WIT_VERSION}):",
        lang.as_str(),
        created.dir.display()
    );
    for f in &created.files {
        println!("  {}", f.display());
    }
    let test = match lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest",
        Lang::Js => "npm test",
    };
    println!(
        "next: cd {} && ./build.sh && host plugin check {name}.wasm && {test} && host run pipeline.toml",
        created.dir.display()
    );
    Exit::Success
}
