//! Reading the gateway's internal request (an OpenAI-shaped chat or embeddings body) the way
//! every native dialect needs it: validated function tools, parameters a provider cannot
//! honour, stop sequences, the output-token limit, messages grouped into alternating turns, and
//! the inputs of an embeddings request. Each reader answers a 400 naming the parameter when
//! the request is wrong.

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The parameters among `unsupported` that a request asks for, for a provider that cannot
/// honour them: a 400 naming the first, or with `drop` (`DROP_UNSUPPORTED_PARAMS`) their names,
/// to leave out and log. A value that asks for nothing (`null`, `false`, `0`, `n: 1`, a `text`
/// `response_format`) is accepted silently: clients send such defaults.
pub fn unsupported_params(
    body: &Map<String, Value>,
    unsupported: &[&str],
    provider: &str,
    drop: bool,
) -> Result<Vec<String>, ApiError> {
    let mut dropped = Vec::new();
    for &name in unsupported {
        let asks_nothing = match body.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => true,
            Some(Value::Number(n)) => {
                n.as_f64() == Some(0.0) || (name == "n" && n.as_f64() == Some(1.0))
            }
            Some(v) if name == "response_format" => v.get("type") == Some(&json!("text")),
            _ => false,
        };
        if asks_nothing {
            continue;
        }
        if !drop {
            return Err(ApiError::invalid(
                Some(name),
                format!("`{name}` is not supported by {provider} models. Remove it, or set DROP_UNSUPPORTED_PARAMS=true to have the gateway drop it."),
            ));
        }
        dropped.push(name.to_string());
    }
    Ok(dropped)
}

/// OpenAI's `stop` (a string or strings) as a list of stop sequences; `None` when absent or
/// empty, a 400 naming `stop` when it is neither.
pub fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            Ok((!a.is_empty()).then(|| Value::Array(a.clone())))
        }
        Some(_) => Err(ApiError::invalid(
            Some("stop"),
            "`stop` must be a string or an array of strings.",
        )),
    }
}

/// The output-token limit the client set (`max_completion_tokens`, else `max_tokens`); a 400
/// when it is not a positive integer.
pub fn max_tokens(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    let value = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).filter(|v| !v.is_null()));
    match value {
        None => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            ApiError::invalid(
                Some("max_tokens"),
                "`max_tokens` must be a positive integer.",
            )
        }),
    }
}

/// A function tool from an OpenAI request's `tools`, validated.
pub struct FunctionTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// The JSON Schema of its arguments (an empty object schema when the client gave none).
    pub parameters: Value,
    /// The tool as the client sent it (for dialect extras such as `cache_control`).
    pub raw: &'a Value,
}

/// The function tools of an OpenAI request (none when `tools` is absent); a 400 naming the
/// tool that is not a function tool with a name. Every native dialect starts from these.
pub fn function_tools(tools: Option<&Value>) -> Result<Vec<FunctionTool<'_>>, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(t)) => t,
        Some(_) => {
            return Err(ApiError::invalid(
                Some("tools"),
                "`tools` must be an array.",
            ))
        }
    };
    tools
        .iter()
        .enumerate()
        .map(|(k, tool)| {
            let is_function = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function")
                == "function";
            let function = tool.get("function").filter(|_| is_function);
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            let (Some(function), Some(name)) = (function, name) else {
                return Err(ApiError::invalid(
                    Some(&format!("tools[{k}]")),
                    format!("`tools[{k}]` must be a function tool with a name."),
                ));
            };
            Ok(FunctionTool {
                name,
                description: function.get("description").and_then(Value::as_str),
                parameters: function
                    .get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                raw: tool,
            })
        })
        .collect()
}

/// How a dialect whose conversation alternates user and assistant turns builds the content
/// blocks of each OpenAI message (Anthropic's Messages, Bedrock's Converse).
pub trait TurnBlocks {
    /// The provider's label, for the error about an unknown role.
    fn label(&self) -> &str;
    /// A system or developer message's content, as system blocks.
    fn system(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError>;
    /// A user message's content (text and images).
    fn user(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError>;
    /// An assistant message's text.
    fn assistant(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError>;
    /// The `j`th of an assistant message's `tool_calls`.
    fn tool_use(&self, call: &Value, i: usize, j: usize) -> Result<Value, ApiError>;
    /// A `tool` message's result for the call `id`.
    fn tool_result(&self, id: &str, content: &Value, i: usize) -> Result<Value, ApiError>;
}

/// OpenAI messages → (system blocks, turns of alternating roles): system and developer
/// messages are lifted out, `tool` results join the user turn, and consecutive messages of one
/// role are merged into one turn; messages with no content are left out.
#[allow(clippy::type_complexity)]
pub fn alternating_turns(
    messages: &[Value],
    blocks: &impl TurnBlocks,
) -> Result<(Vec<Value>, Vec<(&'static str, Vec<Value>)>), ApiError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m.get("content").unwrap_or(&Value::Null);
        let (turn_role, made) = match role {
            "system" | "developer" => {
                system.extend(blocks.system(content, i)?);
                continue;
            }
            "user" => ("user", blocks.user(content, i)?),
            "assistant" => {
                let mut made = blocks.assistant(content, i)?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, call) in calls.iter().enumerate() {
                        made.push(blocks.tool_use(call, i, j)?);
                    }
                }
                ("assistant", made)
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(
                        Some(&format!("messages[{i}].tool_call_id")),
                        format!("`messages[{i}]` (role `tool`) needs a string `tool_call_id`."),
                    )
                })?;
                ("user", vec![blocks.tool_result(id, content, i)?])
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    format!(
                        "The role `{other}` is not supported for {} models (use system, user, assistant or tool).",
                        blocks.label()
                    ),
                ))
            }
        };
        if made.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == turn_role => existing.extend(made),
            _ => turns.push((turn_role, made)),
        }
    }
    Ok((system, turns))
}

/// An assistant `tool_calls[j]`'s id, function name and arguments (parsed from their JSON
/// string; `{}` when empty), or a 400 naming the call.
pub fn tool_call_parts(call: &Value, i: usize, j: usize) -> Result<(&str, &str, Value), ApiError> {
    let param = format!("messages[{i}].tool_calls[{j}]");
    let function = call.get("function").unwrap_or(&Value::Null);
    let (Some(id), Some(name)) = (
        call.get("id").and_then(Value::as_str),
        function.get("name").and_then(Value::as_str),
    ) else {
        return Err(ApiError::invalid(
            Some(&param),
            format!("`{param}` needs an `id` and a `function.name`."),
        ));
    };
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| {
            ApiError::invalid(
                Some(&param),
                format!("`{param}.function.arguments` is not valid JSON."),
            )
        })?,
        Some(other) => other.clone(),
    };
    Ok((id, name, input))
}

/// One input of an embeddings request, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Text(String),
    Tokens(Vec<u64>),
}

/// OpenAI's limit on inputs per embeddings request.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// Validates `input` into a list of texts or token arrays.
pub fn embedding_inputs(body: &Map<String, Value>) -> Result<Vec<EmbeddingInput>, ApiError> {
    let bad = |msg: &str| ApiError::invalid(Some("input"), msg.to_string());
    let tokens =
        |items: &[Value]| -> Option<Vec<u64>> { items.iter().map(Value::as_u64).collect() };
    let inputs = match body.get("input") {
        None | Some(Value::Null) => return Err(bad("Missing required parameter: `input`.")),
        Some(Value::String(s)) => vec![EmbeddingInput::Text(s.clone())],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad("`input` must not be an empty array."))
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|s| EmbeddingInput::Text(s.as_str().unwrap_or_default().to_string()))
            .collect(),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => match tokens(items) {
            Some(ids) => vec![EmbeddingInput::Tokens(ids)],
            None => return Err(bad("Token ids in `input` must be non-negative integers.")),
        },
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match tokens(item.as_array().map(Vec::as_slice).unwrap_or(&[])) {
                    Some(ids) if !ids.is_empty() => out.push(EmbeddingInput::Tokens(ids)),
                    _ => return Err(bad("Each token array in `input` must hold non-negative integers.")),
                }
            }
            out
        }
        Some(_) => {
            return Err(bad(
                "`input` must be a string, an array of strings, an array of token ids, or an array of token arrays.",
            ))
        }
    };
    if inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(bad(&format!(
            "`input` holds more than {MAX_EMBEDDING_INPUTS} items."
        )));
    }
    if inputs
        .iter()
        .any(|i| matches!(i, EmbeddingInput::Text(t) if t.is_empty()))
    {
        return Err(bad("`input` must not contain empty strings."));
    }
    Ok(inputs)
}

/// What a provider that embeds text only reads of an embeddings request: the texts, whether
/// the client wants base64, and `dimensions`; a 400 for token arrays (naming `label`), an
/// unknown `encoding_format` or a `dimensions` that is not a positive integer.
pub struct TextEmbeddings<'a> {
    pub texts: Vec<&'a str>,
    pub dimensions: Option<u64>,
}

pub fn text_embeddings<'a>(
    body: &'a Map<String, Value>,
    label: &str,
) -> Result<TextEmbeddings<'a>, ApiError> {
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return Err(ApiError::invalid(
                Some("input"),
                format!("{label} embeds text only: `input` must be a string or an array of strings (token arrays are not accepted)."),
            ))
        }
    };
    match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") | Some("base64") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                Some("encoding_format"),
                format!("encoding_format must be float or base64, not {other:?}"),
            ))
        }
    }
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid(
                Some("dimensions"),
                "`dimensions` must be a positive integer.",
            )
        })?),
    };
    Ok(TextEmbeddings { texts, dimensions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_output_limit_prefers_max_completion_tokens_and_must_be_positive() {
        let both = body(json!({"max_completion_tokens": 5, "max_tokens": 9}));
        assert_eq!(max_tokens(&both).unwrap(), Some(5));
        assert_eq!(
            max_tokens(&body(json!({"max_tokens": null}))).unwrap(),
            None
        );
        let e = max_tokens(&body(json!({"max_tokens": 0}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn text_embeddings_refuse_token_arrays_and_bad_dimensions() {
        let ok = body(json!({"input": ["a", "b"], "dimensions": 8}));
        let read = text_embeddings(&ok, "Gemini").unwrap();
        assert_eq!((read.texts, read.dimensions), (vec!["a", "b"], Some(8)));
        let tokens = body(json!({"input": [1, 2]}));
        let e = text_embeddings(&tokens, "Gemini").err().unwrap();
        assert!(e.message.starts_with("Gemini embeds text only"));
        let dims = body(json!({"input": "a", "dimensions": 0}));
        assert_eq!(
            text_embeddings(&dims, "x").err().unwrap().param.as_deref(),
            Some("dimensions")
        );
    }
}
