//! Any text through the token estimate (`tokens::count`, OpenAI's `o200k_base`): never a
//! panic, at least one token for any text, never more tokens than bytes (each token is one
//! byte or more).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::tokens::count;

fuzz_target!(|text: &str| {
    let tokens = count(text);
    assert!(tokens <= text.len() as u64, "{tokens} tokens in {} bytes", text.len());
    assert_eq!(tokens == 0, text.is_empty());
});
