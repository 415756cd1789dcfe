//! Preparing a JSON Schema for the constraint engine, with coverage beyond llguidance's
//! defaults where it stays sound:
//!
//! - `format` values llguidance does not know are dropped (draft 2020-12 makes `format` an
//!   annotation, so any string satisfies the schema); each is recorded in a note.
//! - `oneOf` whose branches provably cannot overlap becomes `anyOf`: when no value can match
//!   two branches, "exactly one" and "at least one" accept the same values. Disjointness is
//!   proven from `const`/`enum` values, `type` sets, and a required property whose values are
//!   themselves disjoint; anything unproven stays `oneOf` (and is refused if unsupported).
//!
//! - Whitespace between JSON tokens is bounded unless the schema sets its own `x-guidance`
//!   options: nothing, one space, or one line break followed by up to 24 spaces or tabs (the
//!   same rule as llama.cpp's JSON grammars). Compact and pretty-printed JSON both fit, and a
//!   model cannot stall in an endless run of whitespace.
//!
//! The walk is structural: keywords are only rewritten where a subschema sits, never inside
//! `properties` names, `const`, `enum` or `default` values.

use serde_json::{Map, Value};

use crate::error::Result;

/// Formats llguidance enforces.
pub const KNOWN_FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
    "uri",
    "unknown",
];

/// A schema ready for compilation, and what was changed.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The adapted schema.
    pub schema: Value,
    /// One line per adaptation.
    pub notes: Vec<String>,
}

/// The whitespace allowed between JSON tokens (see the module docs).
pub const WHITESPACE: &str = r"(?:[ ]?|\r?\n[ \t]{0,24})";

/// Which of the coverage steps to take; all by default. Switching one off shows what it adds
/// (the suite test reports each step's share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adaptations {
    /// Provably disjoint `oneOf` enforced as `anyOf`.
    pub disjoint_one_of: bool,
    /// Formats llguidance does not know dropped (annotation only).
    pub unknown_formats: bool,
}

impl Default for Adaptations {
    fn default() -> Self {
        Adaptations {
            disjoint_one_of: true,
            unknown_formats: true,
        }
    }
}

impl Adaptations {
    /// None of the steps: the schema as llguidance alone takes it (whitespace still bounded).
    pub fn none() -> Self {
        Adaptations {
            disjoint_one_of: false,
            unknown_formats: false,
        }
    }
}

/// Adapts `schema` (see the module docs).
pub fn prepare(schema: &Value) -> Result<Prepared> {
    prepare_with(schema, Adaptations::default())
}

/// Adapts `schema`, taking only the steps `steps` selects.
pub fn prepare_with(schema: &Value, steps: Adaptations) -> Result<Prepared> {
    let mut out = schema.clone();
    let mut notes = Vec::new();
    let refs = Refs::new(schema);
    walk(&mut out, "#", steps, &refs, &mut notes);
    if let Value::Object(obj) = &mut out {
        obj.entry("x-guidance").or_insert_with(
            || serde_json::json!({"whitespace_flexible": true, "whitespace_pattern": WHITESPACE}),
        );
    }
    Ok(Prepared { schema: out, notes })
}

/// Keywords whose value is one subschema.
const ONE: &[&str] = &[
    "additionalProperties",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const MANY: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const MAP: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Local `$ref`s (`#/$defs/x`, any JSON pointer from the root), followed when proving
/// branches disjoint. Only where no subschema sets its own `$id`: that would make `#` mean
/// another resource's root, so then no reference is followed (unproven, never unsound).
struct Refs<'a> {
    root: &'a Value,
    resolvable: bool,
}

impl<'a> Refs<'a> {
    fn new(root: &'a Value) -> Self {
        fn nested_id(v: &Value, top: bool) -> bool {
            match v {
                Value::Object(o) => {
                    (!top && o.contains_key("$id")) || o.values().any(|x| nested_id(x, false))
                }
                Value::Array(a) => a.iter().any(|x| nested_id(x, false)),
                _ => false,
            }
        }
        Refs {
            root,
            resolvable: !nested_id(root, true),
        }
    }

    /// `v`, or the schema its `$ref` points to (a few hops at most). A `$ref` beside other
    /// keywords means both apply; the target alone admits at least as much, so proving the
    /// target disjoint from another branch proves the branch disjoint too.
    fn resolve<'b>(&self, mut v: &'b Value) -> Option<&'b Value>
    where
        'a: 'b,
    {
        for _ in 0..8 {
            let Some(r) = v.get("$ref") else {
                return Some(v);
            };
            let ptr = r.as_str()?.strip_prefix('#')?;
            if !self.resolvable || !(ptr.is_empty() || ptr.starts_with('/')) {
                return None;
            }
            v = self.root.pointer(ptr)?;
        }
        None
    }
}

fn walk(v: &mut Value, path: &str, steps: Adaptations, refs: &Refs, notes: &mut Vec<String>) {
    let Value::Object(obj) = v else { return };
    if let Some(Value::String(f)) = obj.get("format") {
        if steps.unknown_formats && !KNOWN_FORMATS.contains(&f.as_str()) {
            notes.push(format!(
                "{path}: format \"{f}\" is not enforced (annotation only; any string is accepted)"
            ));
            obj.remove("format");
        }
    }
    if let Some(Value::Array(branches)) = obj.get("oneOf") {
        if steps.disjoint_one_of && branches.len() > 1 && pairwise_disjoint(branches, obj, refs) {
            notes.push(format!(
                "{path}: oneOf branches cannot overlap; enforced as anyOf"
            ));
            if let Some(b) = obj.remove("oneOf") {
                if obj.contains_key("anyOf") {
                    // Keep both constraints: wrap the existing anyOf alongside.
                    let prev = obj.remove("anyOf").unwrap_or(Value::Null);
                    let all = obj
                        .entry("allOf")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(a) = all {
                        a.push(Value::Object(Map::from_iter([("anyOf".to_string(), prev)])));
                        a.push(Value::Object(Map::from_iter([("anyOf".to_string(), b)])));
                    }
                } else {
                    obj.insert("anyOf".into(), b);
                }
            }
        }
    }
    for k in ONE {
        if let Some(sub) = obj.get_mut(*k) {
            if sub.is_array() && *k == "items" {
                // draft 4-7 tuple form
                if let Value::Array(a) = sub {
                    for (i, s) in a.iter_mut().enumerate() {
                        walk(s, &format!("{path}/{k}/{i}"), steps, refs, notes);
                    }
                }
            } else {
                walk(sub, &format!("{path}/{k}"), steps, refs, notes);
            }
        }
    }
    for k in MANY {
        if let Some(Value::Array(a)) = obj.get_mut(*k) {
            for (i, s) in a.iter_mut().enumerate() {
                walk(s, &format!("{path}/{k}/{i}"), steps, refs, notes);
            }
        }
    }
    for k in MAP {
        if let Some(Value::Object(m)) = obj.get_mut(*k) {
            for (name, s) in m.iter_mut() {
                walk(s, &format!("{path}/{k}/{name}"), steps, refs, notes);
            }
        }
    }
}

fn pairwise_disjoint(branches: &[Value], parent: &Map<String, Value>, refs: &Refs) -> bool {
    for i in 0..branches.len() {
        for j in i + 1..branches.len() {
            if !disjoint(&branches[i], &branches[j], parent, refs) {
                return false;
            }
        }
    }
    true
}

/// JSON types a value has ("integer" values are also "number").
fn value_types(v: &Value) -> Vec<&'static str> {
    match v {
        Value::Null => vec!["null"],
        Value::Bool(_) => vec!["boolean"],
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                vec!["integer", "number"]
            } else {
                vec!["number"]
            }
        }
        Value::String(_) => vec!["string"],
        Value::Array(_) => vec!["array"],
        Value::Object(_) => vec!["object"],
    }
}

/// The values a schema admits at most, when it says so with `const` or `enum`.
fn finite_values(s: &Map<String, Value>) -> Option<Vec<&Value>> {
    if let Some(c) = s.get("const") {
        return Some(vec![c]);
    }
    match s.get("enum") {
        Some(Value::Array(a)) => Some(a.iter().collect()),
        _ => None,
    }
}

/// The types a schema admits at most, when it says so with `type` (widened by the parent's).
fn type_set(s: &Map<String, Value>, parent: &Map<String, Value>) -> Option<Vec<String>> {
    let read = |m: &Map<String, Value>| -> Option<Vec<String>> {
        match m.get("type")? {
            Value::String(t) => Some(vec![t.clone()]),
            Value::Array(a) => a.iter().map(|t| t.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    };
    read(s).or_else(|| read(parent))
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn admits_type(types: &[String], t: &str) -> bool {
    types
        .iter()
        .any(|x| x == t || (x == "number" && t == "integer"))
}

/// Whether no value can satisfy both `a` and `b` (false when unproven).
fn disjoint(a: &Value, b: &Value, parent: &Map<String, Value>, refs: &Refs) -> bool {
    let (Some(a), Some(b)) = (refs.resolve(a), refs.resolve(b)) else {
        return false;
    };
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        // `false` schemas match nothing; `true` matches everything.
        return matches!((a, b), (Value::Bool(false), _) | (_, Value::Bool(false)));
    };
    let (va, vb) = (finite_values(a), finite_values(b));
    if let (Some(va), Some(vb)) = (&va, &vb) {
        if va.iter().all(|x| vb.iter().all(|y| !json_eq(x, y))) {
            return true;
        }
    }
    let (ta, tb) = (type_set(a, parent), type_set(b, parent));
    if let (Some(ta), Some(tb)) = (&ta, &tb) {
        let overlap =
            ta.iter().any(|t| admits_type(tb, t)) || tb.iter().any(|t| admits_type(ta, t));
        if !overlap {
            return true;
        }
    }
    for (vals, types) in [(&va, &tb), (&vb, &ta)] {
        if let (Some(vals), Some(types)) = (vals, types) {
            if vals
                .iter()
                .all(|v| !value_types(v).iter().any(|t| admits_type(types, t)))
            {
                return true;
            }
        }
    }
    // Objects distinguished by a property both require.
    let required = |m: &Map<String, Value>| -> Vec<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let objects_only =
        |t: &Option<Vec<String>>| t.as_ref().is_some_and(|t| t.len() == 1 && t[0] == "object");
    if objects_only(&ta) && objects_only(&tb) {
        let ra = required(a);
        let rb = required(b);
        for k in ra.iter().filter(|k| rb.contains(k)) {
            let pa = a.get("properties").and_then(|p| p.get(k));
            let pb = b.get("properties").and_then(|p| p.get(k));
            if let (Some(pa), Some(pb)) = (pa, pb) {
                if disjoint(pa, pb, &Map::new(), refs) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
