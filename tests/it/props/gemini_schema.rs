//! The Gemini schema cleaner, reached as a client reaches it: a chat request to the Gemini
//! dialect whose `tools[].function.parameters` (and `response_format.json_schema.schema`) is
//! arbitrary JSON. Never a panic; an accepted schema keeps only the keywords Gemini documents
//! (at every schema position), has no `$ref` left and stays bounded; a schema whose `$defs`
//! expand exponentially is a 400, quickly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmcallgateway::providers::{registry, RequestContext, Settings, Target};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{bounded, json_from};

/// Schema keywords, kept or not, and `$ref` targets, so generated schemas look like real ones.
const WORDS: &[&str] = &[
    "type",
    "object",
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "null",
    "properties",
    "items",
    "required",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "#/$defs/a",
    "#/$defs/b",
    "#/definitions/a",
    "a",
    "b",
    "additionalProperties",
    "$schema",
    "default",
    "format",
    "date-time",
    "int32",
    "email",
    "title",
    "description",
    "nullable",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "pattern",
    "minItems",
    "maxItems",
    "propertyNames",
    "examples",
    "example",
    "x",
];

/// What Gemini's `Schema` documents (the cleaner's list).
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

fn gemini() -> Target {
    Target {
        provider: registry::find("gemini").expect("the gemini row"),
        model: "gemini-2.0-flash".into(),
        settings: Arc::new(Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            api_key: Some("fake-gemini-key-for-tests".into()),
            ..Default::default()
        }),
    }
}

/// The Gemini request for a chat whose one tool has these parameters.
fn request_with_parameters(parameters: Value) -> Result<Value, u16> {
    let body = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
    });
    let Value::Object(body) = body else {
        unreachable!()
    };
    let context = RequestContext {
        drop_unsupported: false,
        client_headers: &[],
    };
    let target = gemini();
    match target
        .dialect()
        .chat_request(&target, body, false, &context)
    {
        Ok(prepared) => Ok(serde_json::from_slice(&prepared.call.body).expect("a JSON body")),
        Err(e) => Err(e.status),
    }
}

/// Walks schema positions: every object key there is a kept keyword, and no `$ref` is left.
fn check_schema(node: &Value, nodes: &mut usize) -> Result<(), String> {
    *nodes += 1;
    let Some(o) = node.as_object() else {
        return Ok(());
    };
    for key in o.keys() {
        if !KEPT.contains(&key.as_str()) {
            return Err(format!("`{key}` survived in {node}"));
        }
    }
    if let Some(Value::Object(props)) = o.get("properties") {
        for p in props.values() {
            check_schema(p, nodes)?;
        }
    }
    if let Some(items) = o.get("items") {
        check_schema(items, nodes)?;
    }
    if let Some(Value::Array(branches)) = o.get("anyOf") {
        for b in branches {
            check_schema(b, nodes)?;
        }
    }
    Ok(())
}

/// A schema-shaped value: objects of schema keywords, `$defs` of a few names.
fn schema() -> impl Strategy<Value = Value> {
    let defs = prop::collection::vec(
        (prop::sample::select(&["a", "b", "c"][..]), json_from(WORDS)),
        0..3,
    );
    (json_from(WORDS), defs, any::<bool>()).prop_map(|(mut root, defs, legacy)| {
        if let Value::Object(o) = &mut root {
            if !defs.is_empty() {
                let defs: Map<String, Value> =
                    defs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let key = if legacy { "definitions" } else { "$defs" };
                o.insert(key.into(), Value::Object(defs));
            }
        }
        root
    })
}

fn parameters_of(request: &Value) -> Option<&Value> {
    request["tools"][0]["functionDeclarations"][0].get("parameters")
}

proptest! {
    #![proptest_config(bounded(256))]

    #[test]
    fn any_tool_schema_is_cleaned_to_gemini_keywords_or_refused_with_a_400(params in schema()) {
        match request_with_parameters(params.clone()) {
            Ok(request) => {
                if let Some(cleaned) = parameters_of(&request) {
                    let mut nodes = 0;
                    if let Err(problem) = check_schema(cleaned, &mut nodes) {
                        return Err(TestCaseError::fail(format!("{problem}\ninput: {params}")));
                    }
                    prop_assert!(nodes <= 20_001, "{nodes} nodes");
                }
            }
            Err(status) => prop_assert_eq!(status, 400),
        }
    }
}

/// Eight definitions of 30 properties, each pointing at the next: ~30^8 nodes once inlined,
/// from a schema of a few kilobytes. A 400, and quickly: the expansion stops at its budget.
#[test]
fn self_referencing_defs_that_expand_exponentially_are_a_quick_400() {
    let mut defs = Map::new();
    for level in 0..8 {
        let next = format!("#/$defs/d{}", level + 1);
        let props: Map<String, Value> = (0..30)
            .map(|p| (format!("p{p}"), json!({"$ref": next})))
            .collect();
        defs.insert(
            format!("d{level}"),
            json!({"type": "object", "properties": props}),
        );
    }
    defs.insert("d8".into(), json!({"type": "string"}));
    let schema = json!({"$ref": "#/$defs/d0", "$defs": defs});
    assert!(schema.to_string().len() < 8_000);
    let started = Instant::now();
    assert_eq!(request_with_parameters(schema), Err(400));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A definition that refers to itself is cut at the depth bound, not looped over.
#[test]
fn a_recursive_definition_is_cut_not_looped() {
    let schema = json!({
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/node"}},
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
    });
    let request = request_with_parameters(schema).expect("accepted");
    let mut nodes = 0;
    check_schema(parameters_of(&request).unwrap(), &mut nodes).unwrap();
    assert!(nodes < 100, "{nodes}");
}

/// The first input `cargo fuzz` flagged (fuzz/seeds/gemini_schema/crash_ref_inside_type_value.json):
/// a `$ref` inside a malformed `"type": {…}` value. Not a cleaner defect: the value of `type` is
/// data, passed on as it is (Gemini refuses it), and no `$ref` is left at a schema position.
#[test]
fn a_ref_inside_a_malformed_type_value_leaves_no_ref_at_a_schema_position() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/gemini_schema/crash_ref_inside_type_value.json"
    );
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let request = request_with_parameters(schema).expect("accepted");
    let mut nodes = 0;
    check_schema(parameters_of(&request).unwrap(), &mut nodes).unwrap();
}
