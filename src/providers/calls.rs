//! What the dialects share about the HTTP calls they make and the answers that need no
//! translation: the headers of a call (what it accepts, its key), a POST of a JSON body, a 2xx
//! OpenAI answer relayed as received, the models of a provider's model list, and the JSON of
//! a stream event. How each provider authenticates and what it lists stay in its module.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bad_response, Listed, Reply, Settings, Target};
use crate::error::ApiError;
use crate::upstream::{Call, Received, SseEvent};

/// The headers of a call: what it accepts (an event stream, uncompressed, when `stream`; else
/// JSON) and the key in the header `auth` names, when there is one.
pub fn headers(auth: Option<(&'static str, String)>, stream: bool) -> Vec<(&'static str, String)> {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![("accept", accept.to_string())];
    headers.extend(auth);
    if stream {
        // A compressed event stream would be held back by the decoder.
        headers.push(("accept-encoding", "identity".into()));
    }
    headers
}

/// The headers of an OpenAI-style call: [`headers`] with the key as a bearer token.
pub fn bearer(key: Option<&str>, stream: bool) -> Vec<(&'static str, String)> {
    headers(
        key.map(|k| ("authorization", format!("Bearer {k}"))),
        stream,
    )
}

/// A POST of a JSON body to `{base}{path}`.
pub fn post(
    target: &Target,
    path: &str,
    headers: Vec<(&'static str, String)>,
    body: &impl Serialize,
) -> Call {
    Call::post(
        format!("{}{path}", target.base_url()),
        headers,
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// The GET `{base}{path}` that lists a provider's models, with the `headers` for its key;
/// `None` without a base or a key.
pub fn models_call(
    settings: &Settings,
    path: &str,
    headers: impl FnOnce(&str) -> Vec<(&'static str, String)>,
) -> Option<Call> {
    let base = settings.base_url.as_deref()?;
    let key = settings.api_key.as_deref()?;
    Some(Call::get(format!("{base}{path}"), headers(key)))
}

/// A 2xx OpenAI answer (chat or embeddings): relayed as received; its usage read for the record.
/// A usage with only DeepSeek's cache-hit count gets it where OpenAI clients read it (the body
/// is re-serialized only then).
pub fn relayed(answer: Received) -> Result<Reply, ApiError> {
    /// The one field read from an answer: the rest is skipped, not built into a tree (on every
    /// call, for an answer the client gets byte for byte).
    #[derive(Deserialize)]
    struct UsageOnly {
        usage: Option<Value>,
    }
    let object = answer.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let tree = || match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(parsed)) => Ok(parsed),
        _ => Err(bad_response("not a JSON object")),
    };
    let usage = match serde_json::from_slice::<UsageOnly>(&answer.body) {
        Ok(read) if object => read.usage,
        // What the view refuses (not an object, a key given twice) is read as a tree.
        _ => tree()?.remove("usage"),
    };
    let mut usage = usage.filter(|u| !u.is_null());
    if !usage.as_mut().is_some_and(cache_hits_as_cached_tokens) {
        return Ok(Reply {
            usage,
            body: answer.body,
        });
    }
    // DeepSeek's usage, rewritten: the answer is re-serialized with it.
    let mut parsed = tree()?;
    parsed.insert("usage".into(), usage.clone().unwrap_or_default());
    Ok(Reply {
        body: serde_json::to_vec(&parsed).unwrap_or(answer.body),
        usage,
    })
}

/// DeepSeek counts cache hits only as `prompt_cache_hit_tokens`: they are copied to
/// `prompt_tokens_details.cached_tokens`, where OpenAI clients read them. True when the usage
/// was changed.
pub fn cache_hits_as_cached_tokens(usage: &mut Value) -> bool {
    let Some(hits) = usage["prompt_cache_hit_tokens"].as_u64() else {
        return false;
    };
    if !usage["prompt_tokens_details"]["cached_tokens"].is_null() {
        return false;
    }
    match usage.get_mut("prompt_tokens_details") {
        Some(Value::Object(details)) => {
            details.insert("cached_tokens".into(), hits.into());
        }
        _ => usage["prompt_tokens_details"] = serde_json::json!({"cached_tokens": hits}),
    }
    true
}

/// The models of a provider's model list: the items of its `field` list, each read by `read`
/// (an item it cannot read is left out); an `Err` saying why when the body is not such a list.
pub fn listed(
    body: &[u8],
    field: &str,
    read: impl Fn(&Value) -> Option<Listed>,
) -> Result<Vec<Listed>, String> {
    let mut list: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_string())?;
    match list.get_mut(field).map(Value::take) {
        Some(Value::Array(items)) => Ok(items.iter().filter_map(read).collect()),
        _ => Err(format!("no `{field}` list")),
    }
}

/// A listed model known only by its id.
pub fn named(id: &str) -> Listed {
    Listed {
        id: id.to_string(),
        created: 0,
        owned_by: None,
    }
}

/// The JSON of a stream event, and its type: the event's own `type` field, else the SSE
/// `event:` line (Anthropic and Cohere send both).
pub fn typed_event(event: &SseEvent) -> Result<(Value, String), ApiError> {
    let data = event_json(event)?;
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .or(event.event.as_deref())
        .unwrap_or_default()
        .to_string();
    Ok((data, kind))
}

/// The JSON of a stream event; a 502 when it is not JSON.
pub fn event_json(event: &SseEvent) -> Result<Value, ApiError> {
    serde_json::from_str(&event.data)
        .map_err(|e| bad_response(format_args!("a stream event is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::relayed;
    use crate::upstream::Answer;

    fn relay(body: &str) -> Result<(Value, Option<Value>), u16> {
        let answer = Answer::local(200, &[], body.as_bytes().to_vec())
            .read()
            .unwrap();
        relayed(answer)
            .map(|r| (serde_json::from_slice(&r.body).unwrap(), r.usage))
            .map_err(|e| e.status)
    }

    #[test]
    fn an_answer_is_relayed_as_received_with_its_usage_read() {
        let body = r#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":1},"choices":[]}"#;
        let (relayed, usage) = relay(body).unwrap();
        assert_eq!(relayed, serde_json::from_str::<Value>(body).unwrap());
        assert_eq!(usage.unwrap()["prompt_tokens"], 3);
        assert_eq!(relay(r#"{"usage":null}"#).unwrap().1, None);
        // A key given twice: the last one counts, as a JSON reader takes it.
        let twice = r#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#;
        assert_eq!(relay(twice).unwrap().1.unwrap()["prompt_tokens"], 2);
    }

    #[test]
    fn an_answer_that_is_not_an_object_is_a_bad_gateway() {
        for body in ["[null]", "[{\"usage\":null}]", "1", "not json", ""] {
            assert_eq!(relay(body).unwrap_err(), 502, "{body}");
        }
    }

    #[test]
    fn deepseek_cache_hits_become_cached_tokens() {
        let body = r#"{"id":"x","usage":{"prompt_tokens":10,"prompt_cache_hit_tokens":6}}"#;
        let (relayed, usage) = relay(body).unwrap();
        assert_eq!(
            relayed["usage"]["prompt_tokens_details"]["cached_tokens"],
            6
        );
        assert_eq!(usage, Some(relayed["usage"].clone()));
        assert_eq!(relayed["id"], json!("x"));
    }
}
