//! A configured secret (the first bytes of the input, when they make one) anywhere in the rest
//! never survives the redactor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::logging::Redactor;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = 8 + (len as usize % 40);
    if rest.len() < len {
        return;
    }
    let (secret, text) = rest.split_at(len);
    let key_char = |b: &u8| b.is_ascii_alphanumeric() || b"_+/=.-".contains(b);
    if !secret.iter().all(key_char) {
        return;
    }
    let secret = std::str::from_utf8(secret).unwrap();
    let text = String::from_utf8_lossy(text);
    let at = text.char_indices().nth(len % 7).map_or(text.len(), |(i, _)| i);
    let planted = format!("{}{secret}{}", &text[..at], &text[at..]);
    let out = Redactor::new([secret.to_string()]).text(&planted).into_owned();
    assert!(!out.contains(secret), "{planted:?} became {out:?}");
});
