//! YAML text → `serde_json::Value` plus the line of every mapping key, so that the LiteLLM
//! config reader can check a document with plain JSON code and still name the line of each
//! problem. Parsed with `saphyr` (YAML 1.2, positions on every node, duplicate keys refused).

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// A parsed document: its value, and the line (1-based) of each key by its path
/// (`model_list[0].litellm_params.model`).
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub lines: HashMap<String, usize>,
}

/// Parses one YAML document; an error names the line and the reason.
pub fn parse(text: &str) -> Result<Document, (usize, String)> {
    let docs =
        MarkedYaml::load_from_str(text).map_err(|e| (e.marker().line(), e.info().to_string()))?;
    let mut lines = HashMap::new();
    let value = match docs.first() {
        None => Value::Null,
        Some(root) => convert(root, "", &mut lines)?,
    };
    if docs.len() > 1 {
        return Err((
            docs[1].span.start.line(),
            "only one YAML document is read".into(),
        ));
    }
    Ok(Document { value, lines })
}

fn convert(
    node: &MarkedYaml<'_>,
    path: &str,
    lines: &mut HashMap<String, usize>,
) -> Result<Value, (usize, String)> {
    let line = node.span.start.line();
    Ok(match &node.data {
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Representation(text, _, _) => Value::String(text.to_string()),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, &format!("{path}[{i}]"), lines))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let name = match &key.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(other) => scalar_value(other).to_string(),
                    _ => return Err((key.span.start.line(), "a key must be a plain word".into())),
                };
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                lines.insert(child.clone(), key.span.start.line());
                map.insert(name, convert(value, &child, lines)?);
            }
            Value::Object(map)
        }
        YamlData::Tagged(_, inner) => convert(inner, path, lines)?,
        YamlData::Alias(_) => return Err((line, "YAML aliases (*name) are not supported".into())),
        YamlData::BadValue => return Err((line, "this value cannot be read".into())),
    })
}

fn scalar_value(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::from(*i),
        Scalar::FloatingPoint(f) => Number::from_f64(f.0).map_or(Value::Null, Value::Number),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_key_lines() {
        let doc = parse("a:\n  - b: 1\n    c: [x, 2.5]\nd: ~\n").unwrap();
        assert_eq!(doc.value["a"][0]["c"][1], 2.5);
        assert_eq!(doc.value["d"], Value::Null);
        assert_eq!(doc.lines["a[0].c"], 3);
        assert_eq!(doc.lines["d"], 4);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a: 1\na: 2\n").unwrap_err().0, 2);
        assert_eq!(parse("a:\n  b: [1\n").unwrap_err().0, 3);
    }
}
