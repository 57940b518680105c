//! A provider's stream through its dialect's translator: the first byte picks the dialect, the
//! rest is its SSE body. `on_event`/`finish` never panic, and every chunk a translator builds
//! is a valid OpenAI `chat.completion.chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::providers::Emit;
use llmcallgateway::upstream::sse::EventReader;
use llmcallgateway_fuzz::{assert_valid_chunk, target, DIALECTS};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let target = target(DIALECTS[pick as usize % DIALECTS.len()], "some-model");
    let mut stream = target.dialect().chat_stream(&target);
    let mut reader = EventReader::new(std::io::Cursor::new(body.to_vec()));
    let check = |emits: Vec<Emit>| {
        let mut done = false;
        for emit in emits {
            match emit {
                Emit::Chunk(chunk) => assert_valid_chunk(&chunk),
                Emit::Done => done = true,
                Emit::Raw(_) => {}
            }
        }
        done
    };
    for _ in 0..=body.len() {
        match reader.next_event() {
            Ok(Some(event)) => match stream.on_event(event) {
                Ok(emits) => {
                    if check(emits) {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(None) => break,
            Err(_) => return,
        }
    }
    if let Ok(emits) = stream.finish() {
        check(emits);
    }
});
