//! `host plugin check FILE.wasm`: what a component is, and whether this host
//! can run it; `host plugin new`: a new plugin project.

use super::{Exit, Failure, Globals, Outcome};
use host::capabilities::Runtime;
use host::runtime::bindings::{WIT_ACCEPTED, WIT_PACKAGE, WIT_VERSION};
use host::scaffold::{self, Lang};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum PluginAction {
    /// What a component is: the WIT version it targets, its imports (and what
    /// governs each), its exports, its size, `info()`, and whether this host runs it.
    Check(CheckArgs),
    /// Create a ready-to-build plugin project: sources, build script, test,
    /// README and a pipeline.toml that runs it.
    New(NewArgs),
    /// Run one plugin outside any pipeline: task, config, upstream inputs
    /// from files, model aliases and a workspace from flags; the run is
    /// recorded like any other (`host show RUN_ID STAGE --log`).
    Run(Box<super::plugin_run::PluginRunArgs>),
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The component file (.wasm) to check.
    wasm: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name (lower-case letters, digits, '-', '_').
    name: String,
    /// The language of the new plugin.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to create it (default: ./NAME); must be missing or empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The plugin-sdk directory a Rust project depends on (default: the one this host was built from).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

pub async fn plugin(globals: &Globals, action: PluginAction) -> Outcome {
    match action {
        PluginAction::Check(args) => check(globals, args).await,
        PluginAction::New(args) => new(args),
        PluginAction::Run(args) => super::plugin_run::run(globals, *args).await,
    }
}

async fn check(globals: &Globals, args: CheckArgs) -> Outcome {
    let (path, json) = (args.wasm.as_path(), args.json);
    let runtime = Runtime::new(globals.cache_dir.clone())
        .map_err(|e| Failure::host(format!("cannot start the runtime: {e:#}")))?
        .on_compile(host::session::say_compiling);
    let report = runtime.inspect(path).await.map_err(Failure::invalid)?;
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
        Ok(Exit::Success)
    } else {
        Err(Failure::Reported(Exit::InvalidInput))
    }
}

/// `host plugin new NAME --lang LANG [--dir DIR] [--sdk PATH]`.
fn new(args: NewArgs) -> Outcome {
    let (name, lang) = (args.name.as_str(), args.lang);
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name));
    let sdk = args.sdk.unwrap_or_else(scaffold::default_sdk);
    let created = scaffold::create(name, lang, &dir, &sdk).map_err(Failure::invalid)?;
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
    Ok(Exit::Success)
}
