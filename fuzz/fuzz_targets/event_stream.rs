//! Any bytes as an AWS event-stream body (Bedrock's ConverseStream): messages or an error,
//! never a panic; a decoded message re-encodes to a message that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::upstream::eventstream;
use llmcallgateway::upstream::sse::EventReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = eventstream::decode(data) {
        assert_eq!(message.payload.len() + 16 <= data.len(), true);
    }
    // The same bytes with valid lengths and checksums, so the header parser sees them.
    let total = eventstream::PRELUDE + data.len() + 4;
    let headers_len = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut framed = (total as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&(headers_len as u32).to_be_bytes());
    framed.extend_from_slice(&crc32fast_hash(&framed).to_be_bytes());
    framed.extend_from_slice(data);
    framed.extend_from_slice(&crc32fast_hash(&framed).to_be_bytes());
    if let Ok(message) = eventstream::decode(&framed) {
        assert_eq!(message.payload.len(), data.len() - headers_len);
    }
    let mut reader = EventReader::event_stream(std::io::Cursor::new(data.to_vec()));
    for _ in 0..=data.len() {
        match reader.next_event() {
            Ok(Some(_)) => {}
            _ => return,
        }
    }
});

/// CRC-32 (IEEE), bitwise: the fuzz crate needs no dependency for it.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
