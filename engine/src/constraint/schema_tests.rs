use super::*;
use serde_json::json;

#[test]
fn unknown_formats_are_dropped_known_ones_kept_property_names_untouched() {
    let p = prepare(&json!({
        "type": "object",
        "properties": {
            "format": {"type": "string", "format": "iri"},
            "when": {"type": "string", "format": "date-time"}
        },
        "enum": [{"format": "keep me"}]
    }))
    .unwrap();
    assert_eq!(p.schema["properties"]["format"], json!({"type": "string"}));
    assert_eq!(p.schema["properties"]["when"]["format"], "date-time");
    assert_eq!(p.schema["enum"][0]["format"], "keep me");
    assert_eq!(p.notes.len(), 1);
    assert!(p.notes[0].contains("iri") && p.notes[0].contains("#/properties/format"));
}

#[test]
fn one_of_becomes_any_of_only_when_provably_disjoint() {
    let disjoint = [
        json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"oneOf": [{"const": "a"}, {"const": "b"}, {"enum": [1, 2]}]}),
        json!({"oneOf": [
            {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "disk"}}},
            {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "net"}}}]}),
        json!({"oneOf": [{"type": "null"}, {"type": "object"}]}),
        // Local references are followed.
        json!({"oneOf": [{"type": "string"}, {"$ref": "#/$defs/x"}], "$defs": {"x": {"type": "integer"}}}),
        json!({"oneOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/b"}], "$defs": {
            "a": {"type": "object", "required": ["name"], "properties": {"name": {"const": "a"}}},
            "b": {"type": "object", "required": ["name"], "properties": {"name": {"$ref": "#/$defs/bname"}}},
            "bname": {"const": "b"}}}),
    ];
    for s in disjoint {
        let p = prepare(&s).unwrap();
        assert!(
            p.schema.get("anyOf").is_some() && p.schema.get("oneOf").is_none(),
            "{s}"
        );
    }
    let overlapping = [
        json!({"oneOf": [{"type": "number"}, {"type": "integer"}]}),
        json!({"oneOf": [{"minimum": 2}, {"multipleOf": 2}]}),
        json!({"oneOf": [{"type": "number"}, {"$ref": "#/$defs/x"}], "$defs": {"x": {"type": "integer"}}}),
        // A reference that does not resolve, or a nested `$id` that changes what `#` means.
        json!({"oneOf": [{"type": "string"}, {"$ref": "#/$defs/missing"}]}),
        json!({"oneOf": [{"type": "string"}, {"$ref": "other.json#/x"}]}),
        json!({"oneOf": [{"type": "string"}, {"$ref": "#/$defs/x"}], "$defs": {"x": {"type": "integer"},
            "y": {"$id": "http://example.com/y", "$defs": {"x": {"type": "string"}}}}}),
        json!({"oneOf": [{"type": "string"}, {"$ref": "#/$defs/loop"}], "$defs": {"loop": {"$ref": "#/$defs/loop"}}}),
        json!({"oneOf": [{"enum": [1, 2]}, {"enum": [2.0, 3]}]}),
        json!({"oneOf": [{"const": 1}, {"type": "number"}]}),
    ];
    for s in overlapping {
        let p = prepare(&s).unwrap();
        assert!(p.schema.get("oneOf").is_some(), "must stay oneOf: {s}");
    }
}
