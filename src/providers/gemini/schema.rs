//! JSON Schema (as OpenAI tools and `response_format` carry it) → the OpenAPI 3.0 subset that
//! Gemini's `Schema` accepts. Gemini answers 400 to any key it does not know
//! (`additionalProperties`, `$schema`, `const`, `exclusiveMinimum`, `propertyNames`, …), so
//! only the documented fields are kept; `const` becomes a one-value `enum`, `type: [t, "null"]`
//! becomes `type: t, nullable: true`, and local `$ref`s (`#/$defs/…`, `#/definitions/…`, as
//! Pydantic writes them) are inlined to a bounded depth and a bounded size: every property and
//! `anyOf` branch of an inlined definition expands again, so a small schema whose definitions
//! point at each other can stand for billions of nodes. Past [`MAX_NODES`] the request is a 400.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The `Schema` fields Gemini documents; everything else is removed.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "items",
    "minimum",
    "maximum",
];

/// `format` values the Gemini API accepts, by type (others make it answer 400).
const FORMATS: &[(&str, &str)] = &[
    ("string", "enum"),
    ("string", "date-time"),
    ("number", "float"),
    ("number", "double"),
    ("integer", "int32"),
    ("integer", "int64"),
];

/// How deep `$ref`s are followed: a recursive schema is cut there, not looped over.
const MAX_REF_DEPTH: usize = 8;

/// The most schema nodes one cleaned schema may have once its `$ref`s are inlined. Real tool
/// schemas have hundreds; the bound keeps one request's work and memory small.
pub(super) const MAX_NODES: usize = 20_000;

/// The schema as Gemini accepts it; a 400 naming `param` when inlining its `$ref`s would make
/// it larger than [`MAX_NODES`].
pub(super) fn clean(schema: &Value, param: &str) -> Result<Value, ApiError> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut budget = MAX_NODES;
    clean_node(schema, &defs, 0, &mut budget).ok_or_else(|| {
        ApiError::invalid(
            Some(param),
            format!("The schema expands to more than {MAX_NODES} nodes once its `$ref`s are inlined, as Gemini needs them; simplify it."),
        )
    })
}

/// One node cleaned, its `$ref`s inlined; `None` once the budget of nodes is spent.
fn clean_node(node: &Value, defs: &Value, depth: usize, budget: &mut usize) -> Option<Value> {
    *budget = budget.checked_sub(1)?;
    let Some(object) = node.as_object() else {
        return Some(node.clone());
    };
    if let Some(target) = object.get("$ref").and_then(Value::as_str) {
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"));
        return match name.and_then(|n| defs.get(n)) {
            Some(found) if depth < MAX_REF_DEPTH => {
                let mut inlined = clean_node(found, defs, depth + 1, budget)?;
                // Keys beside the `$ref` (a description) refine the referenced schema.
                if let (Value::Object(into), Value::Object(beside)) = (
                    &mut inlined,
                    clean_node(&without_ref(object), defs, depth + 1, budget)?,
                ) {
                    into.extend(beside);
                }
                Some(inlined)
            }
            _ => Some(Value::Object(Map::from_iter([(
                "type".into(),
                "object".into(),
            )]))),
        };
    }
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "properties" => {
                if let Some(props) = value.as_object() {
                    let mut cleaned = Map::new();
                    for (k, v) in props {
                        cleaned.insert(k.clone(), clean_node(v, defs, depth, budget)?);
                    }
                    out.insert(key.clone(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert(key.clone(), clean_node(value, defs, depth, budget)?);
            }
            "anyOf" | "oneOf" => {
                if let Some(options) = value.as_array() {
                    let cleaned = options
                        .iter()
                        .map(|o| clean_node(o, defs, depth, budget))
                        .collect::<Option<Vec<_>>>()?;
                    out.insert("anyOf".into(), Value::Array(cleaned));
                }
            }
            "const" => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "type" => match value {
                Value::Array(types) => {
                    let mut rest = types.iter().filter(|t| t.as_str() != Some("null"));
                    if types.len() > rest.clone().count() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(first) = rest.next() {
                        out.insert("type".into(), first.clone());
                    }
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            },
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    // Gemini's enums are strings.
    if let Some(Value::Array(values)) = out.get_mut("enum") {
        for v in values.iter_mut() {
            if !v.is_string() {
                let text = match &*v {
                    Value::Null => "null".to_string(),
                    other => other.to_string(),
                };
                *v = Value::String(text);
            }
        }
    }
    let kind = out.get("type").and_then(Value::as_str).unwrap_or("");
    let format_ok = out
        .get("format")
        .and_then(Value::as_str)
        .is_none_or(|f| FORMATS.contains(&(kind, f)));
    if !format_ok {
        out.remove("format");
    }
    // `required` may only name declared properties.
    if let (Some(Value::Array(required)), Some(Value::Object(props))) =
        (out.get("required").cloned(), out.get("properties"))
    {
        let kept: Vec<Value> = required
            .into_iter()
            .filter(|r| r.as_str().is_some_and(|n| props.contains_key(n)))
            .collect();
        out.insert("required".into(), Value::Array(kept));
    }
    Some(Value::Object(out))
}

fn without_ref(object: &Map<String, Value>) -> Value {
    let mut rest = object.clone();
    rest.remove("$ref");
    rest.remove("$defs");
    rest.remove("definitions");
    Value::Object(rest)
}

/// Whether a function's parameters declare nothing (Gemini rejects an object schema with no
/// properties, so such a function is declared without `parameters`).
pub(super) fn is_empty_object(schema: &Value) -> bool {
    schema.is_null()
        || (schema.get("type").and_then(Value::as_str) == Some("object")
            && schema
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            && schema.get("anyOf").is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clean_json(schema: Value) -> Value {
        clean(&schema, "p").unwrap()
    }

    /// Eight definitions of 30 properties, each pointing at the next: about 30^8 nodes once
    /// inlined, from a few kilobytes of JSON.
    fn exponential_schema() -> Value {
        let mut defs = Map::new();
        for d in 0..8 {
            let next = json!({"$ref": format!("#/$defs/D{}", d + 1)});
            let props: Map<String, Value> =
                (0..30).map(|p| (format!("p{p}"), next.clone())).collect();
            defs.insert(
                format!("D{d}"),
                json!({"type": "object", "properties": props}),
            );
        }
        defs.insert("D8".into(), json!({"type": "string"}));
        json!({"$defs": defs, "$ref": "#/$defs/D0"})
    }

    #[test]
    fn a_schema_whose_refs_expand_past_the_node_budget_is_a_400_naming_the_parameter() {
        let schema = exponential_schema();
        assert!(schema.to_string().len() < 20_000);
        let e = clean(&schema, "tools[0].function.parameters").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters"));
        assert!(e.message.contains("20000"), "{}", e.message);
    }

    #[test]
    fn keys_gemini_rejects_are_removed_at_every_depth() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "default": "Paris", "examples": ["Rome"]},
                "days": {"type": "integer", "exclusiveMinimum": 0, "format": "int32"},
                "tags": {"type": "array", "items": {"type": "string", "format": "uri",
                         "propertyNames": {"pattern": "x"}}},
                "mode": {"const": "fast"},
                "note": {"type": ["string", "null"]}
            },
            "required": ["city", "ghost"]
        });
        assert_eq!(
            clean(&schema, "p").unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer", "format": "int32"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "mode": {"enum": ["fast"]},
                    "note": {"type": "string", "nullable": true}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn pydantic_refs_are_inlined_and_recursion_is_bounded() {
        let schema = json!({
            "$defs": {
                "Step": {"type": "object", "properties": {"text": {"type": "string"},
                         "next": {"$ref": "#/$defs/Step"}}, "additionalProperties": false}
            },
            "type": "object",
            "properties": {"first": {"$ref": "#/$defs/Step", "description": "the start"}},
        });
        let cleaned = clean(&schema, "p").unwrap();
        let first = &cleaned["properties"]["first"];
        assert_eq!(first["description"], "the start");
        assert_eq!(first["properties"]["text"], json!({"type": "string"}));
        assert!(first.get("additionalProperties").is_none());
        assert!(cleaned.get("$defs").is_none());
        assert!(!cleaned.to_string().contains("$ref"));
    }

    #[test]
    fn enums_become_strings_and_one_of_becomes_any_of() {
        let cleaned =
            clean_json(json!({"oneOf": [{"type": "integer", "enum": [1, 2]}, {"type": "null"}]}));
        assert_eq!(
            cleaned,
            json!({"anyOf": [{"type": "integer", "enum": ["1", "2"]}, {"type": "null"}]})
        );
    }

    #[test]
    fn an_object_without_properties_counts_as_no_parameters() {
        assert!(is_empty_object(
            &json!({"type": "object", "properties": {}})
        ));
        assert!(is_empty_object(&Value::Null));
        assert!(!is_empty_object(
            &json!({"type": "object", "properties": {"a": {"type": "string"}}})
        ));
    }
}
