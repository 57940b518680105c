//! Any bytes as a provider's SSE body: events or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::upstream::sse::EventReader;

fuzz_target!(|data: &[u8]| {
    let mut reader = EventReader::new(std::io::Cursor::new(data.to_vec()));
    for _ in 0..=data.len() {
        match reader.next_event() {
            Ok(Some(_)) => {}
            _ => return,
        }
    }
    panic!("more events than bytes");
});
