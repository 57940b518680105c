//! The log redactor: a configured secret (8 characters or more, made of the characters keys
//! are made of) embedded anywhere in text, or in any string of a JSON body that the recorder
//! embeds in an interaction line, never survives, alone or among other configured secrets.

use llmcallgateway::logging::Redactor;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{bounded, json_from};

/// The characters of real keys: `sk-…`, AWS secret keys (`+`, `/`), session tokens (`=`).
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_+/=.-]{8,48}"
}

const WORDS: &[&str] = &[
    "error",
    "message",
    "api_key",
    "key",
    "Authorization",
    "x",
    "sk-",
];

/// Every string of a JSON value, object keys included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|c| strings(c, out)),
        Value::Object(o) => o.iter().for_each(|(k, c)| {
            out.push(k.clone());
            strings(c, out);
        }),
        _ => {}
    }
}

/// `secret` spliced into the `n`-th string of `v` (pre-order, values only) at `at`.
fn plant(v: &mut Value, n: &mut usize, secret: &str, at: prop::sample::Index) -> bool {
    match v {
        Value::String(s) => {
            if *n == 0 {
                let chars: Vec<char> = s.chars().collect();
                let cut = at.index(chars.len() + 1);
                *s = chars[..cut].iter().collect::<String>()
                    + secret
                    + &chars[cut..].iter().collect::<String>();
                return true;
            }
            *n -= 1;
            false
        }
        Value::Array(a) => a.iter_mut().any(|c| plant(c, n, secret, at)),
        Value::Object(o) => o.values_mut().any(|c| plant(c, n, secret, at)),
        _ => false,
    }
}

/// The interaction line as the recorder makes it: the body embedded as the JSON text it was
/// exchanged as, the whole line redacted.
fn logged_line(redactor: &Redactor, body_text: &str) -> String {
    #[derive(serde::Serialize)]
    struct Line {
        request_id: &'static str,
        downstream_response: Box<RawValue>,
    }
    let raw = RawValue::from_string(body_text.to_string()).expect("valid JSON");
    let line = serde_json::to_string(&Line {
        request_id: "r",
        downstream_response: raw,
    })
    .unwrap();
    assert!(line.contains(body_text), "embedded as it came");
    redactor.text(&line).into_owned()
}

proptest! {
    #![proptest_config(bounded(512))]

    #[test]
    fn a_configured_secret_anywhere_in_text_never_survives(
        secrets in prop::collection::vec(secret(), 1..4),
        before in ".{0,40}",
        after in ".{0,40}",
        which in any::<prop::sample::Index>(),
    ) {
        let planted = which.get(&secrets).clone();
        let redactor = Redactor::new(secrets.clone());
        let text = format!("{before}{planted}{after}");
        let out = redactor.text(&text);
        prop_assert!(!out.contains(&planted), "{text:?} became {out:?}");
    }

    #[test]
    fn a_configured_secret_in_any_json_body_string_never_reaches_the_line(
        secrets in prop::collection::vec(secret(), 1..3),
        body in json_from(WORDS),
        node in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let planted = secrets[0].clone();
        let mut body = json!({"error": {"message": "x", "detail": body}});
        let mut count = Vec::new();
        strings(&body, &mut count);
        let mut n = node.index(count.len().max(1));
        if !plant(&mut body, &mut n, &planted, at) {
            let mut zero = 0;
            plant(&mut body, &mut zero, &planted, at);
        }
        let line = logged_line(&Redactor::new(secrets), &body.to_string());
        let parsed: Value = serde_json::from_str(&line).expect("the line stays JSON");
        let mut all = Vec::new();
        strings(&parsed, &mut all);
        prop_assert!(
            all.iter().all(|s| !s.contains(&planted)),
            "the secret {planted:?} survived in {line}"
        );
    }
}

/// A provider that escapes `/` in its JSON (`\/`, as PHP's and some Java encoders do), or
/// writes a character as `\u00XX`, echoes a key in a form a plain text scan does not see; a
/// reader of the log decodes it back to the key. Found by the property above: the redactor
/// decodes the string literals whose escapes could spell a secret.
#[test]
fn a_secret_echoed_with_json_escapes_is_still_redacted() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY";
    let redactor = Redactor::new([secret.to_string()]);
    for body in [
        r#"{"error":{"message":"bad key wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYFAKEKEY"}}"#,
        r#"{"error":{"message":"bad key \u0077JalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEKEY"}}"#,
    ] {
        let line = logged_line(&redactor, body);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert!(!parsed.to_string().contains(secret), "{line}");
    }
}
