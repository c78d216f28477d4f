//! Where a component's orchestrator:stage differs from this host's, named in
//! WIT terms, before anything is instantiated.
//!
//! A component built against a modified or newer copy of the WIT under the
//! same version (an extra field in `plugin-info`, a function the host lacks)
//! would otherwise fail deep inside wasmtime ("type mismatch with results:
//! expected record of 4 fields, found 5 fields", reported as a trap of
//! `info()`). Component types are structural, so the walk goes in step with
//! the host's own WIT (embedded, parsed once) to say which record, field or
//! function differs.

use crate::bindings::{WIT_PACKAGE, WIT_VERSION};
use crate::world::WitLine;
use std::collections::HashMap;
use std::sync::OnceLock;
use wasmtime::Engine;
use wasmtime::component::types::{self as ct, ComponentItem};
use wit_parser::{Resolve, Type as WitType, TypeDefKind};

/// The WIT this host was built from, and the last of the 0.2 line (its
/// plugins are checked against it).
const HOST_WIT: &str = include_str!("../../../../wit/stage.wit");
const WIT_0_2: &str = include_str!("../wit-0.2/stage.wit");

/// One difference between the component's contract and the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `runner.info`, `models.remaining-budget`.
    pub function: String,
    /// What differs, e.g. "its result `plugin-info` has a field `homepage`
    /// this host's does not".
    pub difference: String,
    /// The version of the host's WIT it was compared with: the newest
    /// patch of the component's line.
    pub against: &'static str,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.function, self.difference)
    }
}

/// What a load error says after the mismatches: what to do about them.
pub fn advice(mismatches: &[Mismatch]) -> String {
    let against = mismatches.first().map_or(WIT_VERSION, |m| m.against);
    let rebuild = if against == WIT_VERSION {
        format!("{WIT_PACKAGE}@{WIT_VERSION}")
    } else {
        format!("{WIT_PACKAGE}@{against} (its line's newest) or @{WIT_VERSION}")
    };
    format!(
        "the component was built against another {WIT_PACKAGE} than this host's \
         {WIT_PACKAGE}@{against} (a newer patch, or a modified copy of the WIT): \
         rebuild it against {rebuild} (`host plugin new` writes the current WIT into a new \
         project; plugin-sdk carries it), or run it on a host that has what it uses"
    )
}

struct HostContract {
    /// Its package version ("0.3.0").
    version: &'static str,
    resolve: Resolve,
    /// Interface name (`models`) to its functions, by name.
    interfaces: HashMap<String, wit_parser::InterfaceId>,
}

fn host_contract(line: WitLine) -> Option<&'static HostContract> {
    static CURRENT: OnceLock<Option<HostContract>> = OnceLock::new();
    static V0_2: OnceLock<Option<HostContract>> = OnceLock::new();
    let (cell, text, version) = match line {
        WitLine::V0_3 => (&CURRENT, HOST_WIT, WIT_VERSION),
        WitLine::V0_2 => (&V0_2, WIT_0_2, "0.2.2"),
        // 0.1 plugins are called through their own types (world.rs).
        WitLine::V0_1 => return None,
    };
    cell.get_or_init(|| {
        let mut resolve = Resolve::default();
        let package = resolve.push_str("stage.wit", text).ok()?;
        let interfaces = resolve.packages[package]
            .interfaces
            .iter()
            .map(|(name, id)| (name.clone(), *id))
            .collect();
        Some(HostContract {
            version,
            resolve,
            interfaces,
        })
    })
    .as_ref()
}

/// `orchestrator:stage/models@0.3.0` -> (`models`, its line), for a line
/// whose WIT the host has.
fn checked_interface(name: &str) -> Option<(&str, WitLine)> {
    let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    let (iface, version) = rest.split_once('@')?;
    let line = WitLine::of(version)?;
    (line != WitLine::V0_1).then_some((iface, line))
}

/// Every difference between the functions `component` imports from and
/// exports as orchestrator:stage and this host's WIT.
pub fn mismatches(engine: &Engine, component: &ct::Component) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let imports = component
        .imports(engine)
        .map(|(n, i)| (n, i.ty, Side::Import));
    let exports = component
        .exports(engine)
        .map(|(n, e)| (n, e.ty, Side::Export));
    for (name, ty, side) in imports.chain(exports) {
        if let (Some((iface, line)), ComponentItem::ComponentInstance(instance)) =
            (checked_interface(name), &ty)
            && let Some(host) = host_contract(line)
        {
            compare_instance(engine, host, iface, instance, side, &mut found);
        }
    }
    found
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Import,
    Export,
}

fn compare_instance(
    engine: &Engine,
    host: &HostContract,
    iface: &str,
    instance: &ct::ComponentInstance,
    side: Side,
    found: &mut Vec<Mismatch>,
) {
    let Some(&id) = host.interfaces.get(iface) else {
        found.push(Mismatch {
            against: host.version,
            function: iface.to_string(),
            difference: format!(
                "this host's {WIT_PACKAGE}@{} has no interface `{iface}`",
                host.version
            ),
        });
        return;
    };
    let functions = &host.resolve.interfaces[id].functions;
    let mut seen = Vec::new();
    for (name, item) in instance.exports(engine) {
        let ComponentItem::ComponentFunc(func) = &item.ty else {
            continue;
        };
        seen.push(name.to_string());
        let function = format!("{iface}.{name}");
        let Some(expected) = functions.get(name) else {
            let difference = match side {
                Side::Import => format!(
                    "imported, but this host's {WIT_PACKAGE}@{} has no such function",
                    host.version
                ),
                Side::Export => format!(
                    "exported, but this host's {WIT_PACKAGE}@{} has no such function",
                    host.version
                ),
            };
            found.push(Mismatch {
                function,
                difference,
                against: host.version,
            });
            continue;
        };
        if let Some(difference) = compare_function(&host.resolve, func, expected) {
            found.push(Mismatch {
                function,
                difference,
                against: host.version,
            });
        }
    }
    // A plugin must export every function of `runner`; an import may use
    // only some of an interface.
    if side == Side::Export {
        for name in functions.keys().filter(|n| !seen.contains(n)) {
            found.push(Mismatch {
                against: host.version,
                function: format!("{iface}.{name}"),
                difference: format!(
                    "not exported, and this host's {WIT_PACKAGE}@{} calls it",
                    host.version
                ),
            });
        }
    }
}

fn compare_function(
    resolve: &Resolve,
    func: &ct::ComponentFunc,
    expected: &wit_parser::Function,
) -> Option<String> {
    let params: Vec<(&str, ct::Type)> = func.params().collect();
    if params.len() != expected.params.len() {
        return Some(format!(
            "takes {} parameter(s) where this host's takes {}",
            params.len(),
            expected.params.len()
        ));
    }
    for ((name, ty), param) in params.iter().zip(&expected.params) {
        let what = format!("parameter `{name}`");
        if let Some(d) = compare(resolve, ty, &param.ty, &what) {
            return Some(d);
        }
    }
    let results: Vec<ct::Type> = func.results().collect();
    match (results.first(), &expected.result) {
        (None, None) => None,
        (Some(ty), Some(expected)) if results.len() == 1 => {
            compare(resolve, ty, expected, "result")
        }
        (None, Some(_)) => Some("returns nothing where this host's returns a value".into()),
        _ => Some("returns a value where this host's returns nothing".into()),
    }
}

/// The host's name for a type: `plugin-info`, or its kind.
fn wit_name(resolve: &Resolve, ty: &WitType) -> String {
    match ty {
        WitType::Id(id) => resolve.types[*id]
            .name
            .clone()
            .unwrap_or_else(|| kind_name(&resolve.types[*id].kind).to_string()),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn kind_name(kind: &TypeDefKind) -> &'static str {
    match kind {
        TypeDefKind::Record(_) => "record",
        TypeDefKind::Variant(_) => "variant",
        TypeDefKind::Enum(_) => "enum",
        TypeDefKind::Option(_) => "option",
        TypeDefKind::Result(_) => "result",
        TypeDefKind::List(_) => "list",
        TypeDefKind::Tuple(_) => "tuple",
        TypeDefKind::Flags(_) => "flags",
        _ => "type",
    }
}

/// The component's type `ty` against the host's `expected`; `at` says where
/// it is ("result", "field `capabilities` of `plugin-info`").
fn compare(resolve: &Resolve, ty: &ct::Type, expected: &WitType, at: &str) -> Option<String> {
    let expected_kind = match expected {
        WitType::Id(id) => {
            let mut kind = &resolve.types[*id].kind;
            // An alias (`use types.{...}`, `type x = y`) stands for its target.
            while let TypeDefKind::Type(WitType::Id(next)) = kind {
                kind = &resolve.types[*next].kind;
            }
            if let TypeDefKind::Type(inner) = kind {
                return compare(resolve, ty, inner, at);
            }
            kind
        }
        scalar => {
            return (!same_scalar(ty, scalar)).then(|| {
                format!(
                    "{at} is {} where this host's is {}",
                    component_kind(ty),
                    wit_name(resolve, expected)
                )
            });
        }
    };
    let name = wit_name(resolve, expected);
    match (ty, expected_kind) {
        (ct::Type::Record(record), TypeDefKind::Record(host)) => {
            let fields: Vec<ct::Field<'_>> = record.fields().collect();
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            let host_names: Vec<&str> = host.fields.iter().map(|f| f.name.as_str()).collect();
            if names != host_names {
                return Some(field_difference(at, &name, "field", &names, &host_names));
            }
            fields
                .iter()
                .zip(&host.fields)
                .find_map(|(field, host_field)| {
                    let at = format!("field `{}` of `{name}` ({at})", field.name);
                    compare(resolve, &field.ty, &host_field.ty, &at)
                })
        }
        (ct::Type::Variant(variant), TypeDefKind::Variant(host)) => {
            let cases: Vec<ct::Case<'_>> = variant.cases().collect();
            let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
            let host_names: Vec<&str> = host.cases.iter().map(|c| c.name.as_str()).collect();
            if names != host_names {
                return Some(field_difference(at, &name, "case", &names, &host_names));
            }
            cases.iter().zip(&host.cases).find_map(|(case, host_case)| {
                match (&case.ty, &host_case.ty) {
                    (Some(ty), Some(expected)) => {
                        let at = format!("case `{}` of `{name}` ({at})", case.name);
                        compare(resolve, ty, expected, &at)
                    }
                    (None, None) => None,
                    _ => Some(format!(
                        "case `{}` of `{name}` ({at}) differs in whether it carries a value",
                        case.name
                    )),
                }
            })
        }
        (ct::Type::Enum(e), TypeDefKind::Enum(host)) => {
            let names: Vec<&str> = e.names().collect();
            let host_names: Vec<&str> = host.cases.iter().map(|c| c.name.as_str()).collect();
            (names != host_names).then(|| field_difference(at, &name, "case", &names, &host_names))
        }
        (ct::Type::Flags(f), TypeDefKind::Flags(host)) => {
            let names: Vec<&str> = f.names().collect();
            let host_names: Vec<&str> = host.flags.iter().map(|c| c.name.as_str()).collect();
            (names != host_names).then(|| field_difference(at, &name, "flag", &names, &host_names))
        }
        (ct::Type::List(list), TypeDefKind::List(inner)) => {
            compare(resolve, &list.ty(), inner, &format!("the items of {at}"))
        }
        (ct::Type::Option(option), TypeDefKind::Option(inner)) => {
            compare(resolve, &option.ty(), inner, at)
        }
        (ct::Type::Result(result), TypeDefKind::Result(host)) => {
            let ok = compare_optional(resolve, result.ok(), host.ok, &format!("the ok of {at}"));
            ok.or_else(|| {
                compare_optional(
                    resolve,
                    result.err(),
                    host.err,
                    &format!("the error of {at}"),
                )
            })
        }
        (ct::Type::Tuple(tuple), TypeDefKind::Tuple(host)) => {
            let types: Vec<ct::Type> = tuple.types().collect();
            if types.len() != host.types.len() {
                return Some(format!(
                    "{at} is a tuple of {} where this host's has {}",
                    types.len(),
                    host.types.len()
                ));
            }
            types
                .iter()
                .zip(&host.types)
                .enumerate()
                .find_map(|(i, (ty, expected))| {
                    compare(resolve, ty, expected, &format!("item {i} of {at}"))
                })
        }
        // Resources and anything newer: the linker has the last word.
        (ct::Type::Own(_) | ct::Type::Borrow(_), TypeDefKind::Handle(_)) => None,
        (_, kind) => Some(format!(
            "{at} is {} where this host's is `{name}` ({})",
            component_kind(ty),
            kind_name(kind)
        )),
    }
}

fn compare_optional(
    resolve: &Resolve,
    ty: Option<ct::Type>,
    expected: Option<WitType>,
    at: &str,
) -> Option<String> {
    match (ty, expected) {
        (Some(ty), Some(expected)) => compare(resolve, &ty, &expected, at),
        (None, None) => None,
        (Some(_), None) => Some(format!("{at} has a value where this host's has none")),
        (None, Some(_)) => Some(format!("{at} has no value where this host's has one")),
    }
}

/// "result `plugin-info` has a field `homepage` this host's does not".
fn field_difference(at: &str, name: &str, noun: &str, theirs: &[&str], ours: &[&str]) -> String {
    let extra: Vec<String> = theirs
        .iter()
        .filter(|n| !ours.contains(n))
        .map(|n| format!("`{n}`"))
        .collect();
    let missing: Vec<String> = ours
        .iter()
        .filter(|n| !theirs.contains(n))
        .map(|n| format!("`{n}`"))
        .collect();
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!(
            "has {noun}(s) {} this host's does not",
            extra.join(", ")
        ));
    }
    if !missing.is_empty() {
        parts.push(format!("lacks {noun}(s) {}", missing.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("has its {noun}s in another order"));
    }
    format!("{at} `{name}` {}", parts.join(" and "))
}

fn same_scalar(ty: &ct::Type, expected: &WitType) -> bool {
    matches!(
        (ty, expected),
        (ct::Type::Bool, WitType::Bool)
            | (ct::Type::U8, WitType::U8)
            | (ct::Type::U16, WitType::U16)
            | (ct::Type::U32, WitType::U32)
            | (ct::Type::U64, WitType::U64)
            | (ct::Type::S8, WitType::S8)
            | (ct::Type::S16, WitType::S16)
            | (ct::Type::S32, WitType::S32)
            | (ct::Type::S64, WitType::S64)
            | (ct::Type::Float32, WitType::F32)
            | (ct::Type::Float64, WitType::F64)
            | (ct::Type::Char, WitType::Char)
            | (ct::Type::String, WitType::String)
            | (ct::Type::ErrorContext, WitType::ErrorContext)
    )
}

/// The component's type, in WIT words.
fn component_kind(ty: &ct::Type) -> &'static str {
    match ty {
        ct::Type::Bool => "bool",
        ct::Type::S8 => "s8",
        ct::Type::U8 => "u8",
        ct::Type::S16 => "s16",
        ct::Type::U16 => "u16",
        ct::Type::S32 => "s32",
        ct::Type::U32 => "u32",
        ct::Type::S64 => "s64",
        ct::Type::U64 => "u64",
        ct::Type::Float32 => "f32",
        ct::Type::Float64 => "f64",
        ct::Type::Char => "char",
        ct::Type::String => "a string",
        ct::Type::List(_) => "a list",
        ct::Type::Record(_) => "a record",
        ct::Type::Tuple(_) => "a tuple",
        ct::Type::Variant(_) => "a variant",
        ct::Type::Enum(_) => "an enum",
        ct::Type::Option(_) => "an option",
        ct::Type::Result(_) => "a result",
        ct::Type::Flags(_) => "flags",
        ct::Type::Own(_) | ct::Type::Borrow(_) => "a resource handle",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_own_wit_parses_and_has_the_runner() {
        for line in [WitLine::V0_3, WitLine::V0_2] {
            let host = host_contract(line).expect("the embedded WIT parses");
            let runner = host.interfaces["runner"];
            let functions: Vec<&String> =
                host.resolve.interfaces[runner].functions.keys().collect();
            assert_eq!(functions, ["info", "run"]);
        }
        let current = host_contract(WitLine::V0_3).unwrap();
        assert!(current.interfaces.contains_key("inputs"));
        assert!(
            !host_contract(WitLine::V0_2)
                .unwrap()
                .interfaces
                .contains_key("inputs")
        );
    }

    #[test]
    fn lines_with_a_wit_are_compared() {
        assert_eq!(
            checked_interface("orchestrator:stage/models@0.3.0"),
            Some(("models", WitLine::V0_3))
        );
        assert_eq!(
            checked_interface("orchestrator:stage/models@0.2.0"),
            Some(("models", WitLine::V0_2))
        );
        assert_eq!(checked_interface("orchestrator:stage/models@0.1.1"), None);
        assert_eq!(checked_interface("wasi:cli/stdin@0.2.6"), None);
    }

    #[test]
    fn differences_are_named_both_ways() {
        assert_eq!(
            field_difference(
                "result",
                "plugin-info",
                "field",
                &["a", "b", "x"],
                &["a", "b"]
            ),
            "result `plugin-info` has field(s) `x` this host's does not"
        );
        assert_eq!(
            field_difference("result", "r", "field", &["a"], &["a", "b"]),
            "result `r` lacks field(s) `b`"
        );
        assert_eq!(
            field_difference("result", "r", "case", &["b", "a"], &["a", "b"]),
            "result `r` has its cases in another order"
        );
    }
}
