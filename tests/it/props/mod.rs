//! Property tests (`proptest`) for the parsers and translators that take bytes or JSON from
//! outside: the SSE reader and the AWS event-stream decoder, every dialect's stream translator,
//! the Gemini schema cleaner, the log redactor, request validation, and the URLs a model name
//! can reach. Each property says more than "no panic" where it can, and each runs a fixed number
//! of cases (the whole set stays within seconds in a debug build); `PROPTEST_CASES` raises it for
//! a longer local run. Inputs that once failed are kept as named tests beside the properties.

mod gemini_schema;
mod readers;
mod redactor;
mod streams;
mod urls;
mod validation;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// A bounded run: `cases` examples (or `PROPTEST_CASES`), no files written on failure (a
/// failure prints its minimal input, which becomes a named test).
pub fn bounded(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Arbitrary JSON whose object keys and strings come mostly from `words` (so the translators'
/// own field names and values turn up often), nested a few levels.
pub fn json_from(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let word = prop::sample::select(words).prop_map(str::to_string);
    let string = prop_oneof![3 => word.clone(), 1 => ".{0,12}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..100).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        string.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}
