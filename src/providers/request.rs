//! Reading the gateway's internal request (an OpenAI-shaped chat or embeddings body) the way
//! every native dialect needs it: validated function tools and tool choice, parameters a
//! provider cannot honour (and the fields it passes through), stop sequences, the output-token
//! limit, the texts and images of message content, messages grouped into alternating turns,
//! assistant tool calls, and the inputs of an embeddings request. Dialects build their own
//! blocks from what these read. Each reader answers a 400 naming the parameter when
//! the request is wrong.

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// OpenAI parameters about the tokens and choices of an answer (bias, log probabilities,
/// several choices), which no native dialect honours.
pub const TOKEN_PARAMS: &[&str] = &["logit_bias", "logprobs", "top_logprobs", "n"];

/// OpenAI's penalties and seed: honoured by Cohere (passed through), not by Anthropic or
/// Converse.
pub const PENALTY_PARAMS: &[&str] = &["presence_penalty", "frequency_penalty", "seed"];

/// OpenAI-only features (legacy functions, audio, predicted outputs, web search, reasoning
/// effort, OpenAI's own service and storage options), which no native dialect honours.
pub const OPENAI_ONLY_PARAMS: &[&str] = &[
    "functions",
    "function_call",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "store",
    "metadata",
];

/// The request fields a native dialect that passes unknown fields through translates itself
/// (Anthropic, Cohere): never passed through as they are.
pub const TRANSLATED_PARAMS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
];

/// The parameters in `unsupported` (lists read in order) that a request asks for, for a
/// provider that cannot honour them: a 400 naming the first, or with `drop`
/// (`DROP_UNSUPPORTED_PARAMS`) their names, to leave out and log. A value that asks for nothing
/// (`null`, `false`, `0`, `n: 1`, a `text` `response_format`) is accepted silently: clients send
/// such defaults.
pub fn unsupported_params(
    body: &Map<String, Value>,
    unsupported: &[&[&str]],
    provider: &str,
    drop: bool,
) -> Result<Vec<String>, ApiError> {
    let mut dropped = Vec::new();
    for &name in unsupported.iter().copied().flatten() {
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

/// The request's `messages`; a 400 when it is not an array.
pub fn messages(body: &Map<String, Value>) -> Result<&[Value], ApiError> {
    body.get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| ApiError::invalid(Some("messages"), "`messages` must be an array."))
}

/// Copies into `out` every field of `body` that the dialect neither translates nor refuses
/// (in none of the `translated` and `unsupported` lists) and that `out` does not already hold,
/// so provider-only parameters reach the provider as the client sent them.
pub fn pass_through(
    body: &Map<String, Value>,
    out: &mut Map<String, Value>,
    translated: &[&[&str]],
    unsupported: &[&[&str]],
) {
    for (key, value) in body {
        let known = |lists: &[&[&str]]| lists.iter().any(|l| l.contains(&key.as_str()));
        if known(translated) || known(unsupported) {
            continue;
        }
        out.entry(key.clone()).or_insert_with(|| value.clone());
    }
}

/// OpenAI's `tool_choice`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    /// `{"type":"function","function":{"name":…}}`.
    Function(&'a str),
}

/// The request's `tool_choice` (`None` when absent); a 400 naming `tool_choice` when it is
/// not auto, none, required or a named function.
pub fn tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice<'_>>, ApiError> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            other => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("`tool_choice` {other:?} is not one of auto, none, required."),
                ))
            }
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(ToolChoice::Function(name)),
            None => {
                return Err(ApiError::invalid(
                    Some("tool_choice"),
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}.",
                ))
            }
        },
    })
}

/// The 400 about `messages[i].content`.
fn invalid_content(i: usize, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Some(&format!("messages[{i}].content")), message)
}

/// The texts of a message's text content (a string, or `text`/`refusal` parts), each with the
/// part it came from (`None` for a string), empty texts left out; a 400 for a part of another
/// type or without a string text. Dialects build their own text blocks from these.
pub fn text_parts(content: &Value, i: usize) -> Result<Vec<(&str, Option<&Value>)>, ApiError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![(s.as_str(), None)]),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("text");
                let text = match kind {
                    "text" => part.get("text"),
                    "refusal" => part.get("refusal"),
                    _ => {
                        return Err(invalid_content(
                            i,
                            format!(
                                "Content parts of type `{kind}` are only accepted in user messages."
                            ),
                        ))
                    }
                };
                let text = text.and_then(Value::as_str).ok_or_else(|| {
                    invalid_content(i, "A text content part needs a string `text`.")
                })?;
                if !text.is_empty() {
                    texts.push((text, Some(part)));
                }
            }
            Ok(texts)
        }
        _ => Err(invalid_content(
            i,
            format!("`messages[{i}].content` must be a string or an array of content parts."),
        )),
    }
}

/// Text content as one string: the [`text_parts`] joined.
pub fn text_of(content: &Value, i: usize) -> Result<String, ApiError> {
    Ok(text_parts(content, i)?
        .into_iter()
        .map(|(text, _)| text)
        .collect())
}

/// An `image_url` part's URL (`image_url.url`, or `image_url` itself as a string); empty
/// when it has none.
pub fn image_url(part: &Value) -> &str {
    part.get("image_url")
        .and_then(|u| u.get("url").or(Some(u)))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image<'a> {
    /// A base64 data URL, split into its media type and data.
    Base64 { media_type: &'a str, data: &'a str },
    /// Any other URL, as given (the dialect decides what it accepts).
    Url(&'a str),
}

/// An `image_url` part's image; a 400 for a data URL that is not
/// `data:<media type>;base64,<data>`.
pub fn image(part: &Value, i: usize) -> Result<Image<'_>, ApiError> {
    let url = image_url(part);
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(Image::Url(url));
    };
    let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
        invalid_content(
            i,
            "An image data URL must be `data:<media type>;base64,<data>`.",
        )
    })?;
    Ok(Image::Base64 { media_type, data })
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

impl FunctionTool<'_> {
    /// `{"name", "description"?}`: the start of the tool's declaration in every native dialect,
    /// which then adds `parameters` under its own key.
    pub fn declaration(&self) -> Value {
        let mut out = json!({ "name": self.name });
        if let Some(d) = self.description {
            out["description"] = json!(d);
        }
        out
    }
}

/// A JSON answer asked for with `response_format`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonFormat<'a> {
    /// `json_object`: any JSON object.
    Object,
    /// `json_schema`: an object matching `schema` (when the client gave an object schema),
    /// and the schema's `description`.
    Schema {
        schema: Option<&'a Value>,
        description: Option<&'a str>,
    },
}

/// The JSON answer `response_format` asks for: `None` when absent or `text`; a 400 naming
/// `response_format` for another type.
pub fn json_format(format: Option<&Value>) -> Result<Option<JsonFormat<'_>>, ApiError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(JsonFormat::Object)),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            Ok(Some(JsonFormat::Schema {
                schema: spec.get("schema").filter(|s| s.is_object()),
                description: spec.get("description").and_then(Value::as_str),
            }))
        }
        _ => Err(ApiError::invalid(
            Some("response_format"),
            "`response_format.type` must be text, json_object or json_schema.",
        )),
    }
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
/// blocks of each OpenAI message (Anthropic's Messages, Bedrock's Converse). A dialect says how
/// it builds a text block, an image block, a tool call and a tool result; reading the content
/// is shared ([`TurnBlocks::texts`], [`TurnBlocks::user`]).
pub trait TurnBlocks {
    /// The provider's label, for the error about an unknown role.
    fn label(&self) -> &str;
    /// The block for one text of text content, from its part (`None` for string content).
    fn text(&self, text: &str, part: Option<&Value>) -> Value;
    /// The block for an `image_url` part of the `i`th message.
    fn image(&self, part: &Value, i: usize) -> Result<Value, ApiError>;
    /// The `j`th of an assistant message's `tool_calls`.
    fn tool_use(&self, call: &Value, i: usize, j: usize) -> Result<Value, ApiError>;
    /// A `tool` message's result for the call `id`.
    fn tool_result(&self, id: &str, content: &Value, i: usize) -> Result<Value, ApiError>;

    /// Text content (system, developer and assistant messages, tool results) as text blocks,
    /// from its [`text_parts`] (empty texts left out: neither provider accepts them).
    fn texts(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
        Ok(text_parts(content, i)?
            .into_iter()
            .map(|(text, part)| self.text(text, part))
            .collect())
    }

    /// A user message's content, in order: `image_url` parts as images, the rest as texts.
    fn user(&self, content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
        let Value::Array(parts) = content else {
            return self.texts(content, i);
        };
        let mut blocks = Vec::new();
        for part in parts {
            match part.get("type").and_then(Value::as_str) {
                Some("image_url") => blocks.push(self.image(part, i)?),
                _ => blocks.extend(self.texts(&Value::Array(vec![part.clone()]), i)?),
            }
        }
        Ok(blocks)
    }
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
                system.extend(blocks.texts(content, i)?);
                continue;
            }
            "user" => ("user", blocks.user(content, i)?),
            "assistant" => {
                let mut made = blocks.texts(content, i)?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, call) in calls.iter().enumerate() {
                        made.push(blocks.tool_use(call, i, j)?);
                    }
                }
                ("assistant", made)
            }
            "tool" => {
                let id = tool_call_id(m, i)?;
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

/// The `tool_call_id` of the `i`th message (role `tool`); a 400 naming it when it is not a
/// string.
pub fn tool_call_id(message: &Value, i: usize) -> Result<&str, ApiError> {
    message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid(
                Some(&format!("messages[{i}].tool_call_id")),
                format!("`messages[{i}]` (role `tool`) needs a string `tool_call_id`."),
            )
        })
}

/// An assistant `tool_calls[j]`'s id, function name and arguments as JSON text (`{}` when
/// absent or blank; not checked), or a 400 naming the call when it has no id or name.
pub fn tool_call_text(call: &Value, i: usize, j: usize) -> Result<(&str, &str, String), ApiError> {
    let function = call.get("function").unwrap_or(&Value::Null);
    let (Some(id), Some(name)) = (
        call.get("id").and_then(Value::as_str),
        function.get("name").and_then(Value::as_str),
    ) else {
        let param = format!("messages[{i}].tool_calls[{j}]");
        return Err(ApiError::invalid(
            Some(&param),
            format!("`{param}` needs an `id` and a `function.name`."),
        ));
    };
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok((id, name, arguments))
}

/// An assistant `tool_calls[j]`'s id, function name and arguments, parsed from their
/// [`tool_call_text`]; a 400 naming the call when they are not valid JSON.
pub fn tool_call_parts(call: &Value, i: usize, j: usize) -> Result<(&str, &str, Value), ApiError> {
    let (id, name, arguments) = tool_call_text(call, i, j)?;
    let input = serde_json::from_str(&arguments).map_err(|_| {
        let param = format!("messages[{i}].tool_calls[{j}]");
        ApiError::invalid(
            Some(&param),
            format!("`{param}.function.arguments` is not valid JSON."),
        )
    })?;
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
