//! The AWS event-stream wire format (`application/vnd.amazon.eventstream`), in which
//! ConverseStream answers: a sequence of binary messages, each
//! `total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32`
//! (big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything before
//! it). A header is `name length (u8) | name | type (u8) | value`. A decoded message becomes
//! an [`SseEvent`] so the relay stays generic: `event` is the `:event-type` of an event, the
//! `:exception-type` of an exception, the `:error-code` of an error; `data` is the payload
//! (for an error, a JSON object with its `:error-message`).

use super::SseEvent;

/// The content type of an event-stream body.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";
/// The prelude: total length, headers length, prelude CRC.
pub const PRELUDE: usize = 12;
/// The smallest message: a prelude and a message CRC.
pub const MIN_MESSAGE: usize = PRELUDE + 4;

/// A header value (only strings matter to the gateway; the others are decoded to be skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    String(String),
    Other,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    /// The message as an event for a dialect's stream translator.
    pub fn into_event(self) -> SseEvent {
        let payload = String::from_utf8_lossy(&self.payload).into_owned();
        match self.header(":message-type") {
            Some("exception") => SseEvent {
                event: Some(self.header(":exception-type").unwrap_or("exception").into()),
                data: payload,
            },
            Some("error") => SseEvent {
                event: Some(self.header(":error-code").unwrap_or("error").into()),
                data: serde_json::json!({
                    "message": self.header(":error-message").unwrap_or("error"),
                })
                .to_string(),
            },
            _ => SseEvent {
                event: self.header(":event-type").map(str::to_string),
                data: payload,
            },
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The total length announced by a prelude, once its CRC is checked.
pub fn total_length(prelude: &[u8; PRELUDE]) -> Result<usize, String> {
    if crc32fast::hash(&prelude[..8]) != u32_at(prelude, 8) {
        return Err("an event-stream message has a bad prelude checksum".into());
    }
    let total = u32_at(prelude, 0) as usize;
    let headers = u32_at(prelude, 4) as usize;
    if total < MIN_MESSAGE || headers > total - MIN_MESSAGE {
        return Err(format!(
            "an event-stream message has impossible lengths ({total}, {headers})"
        ));
    }
    Ok(total)
}

/// Decodes one whole message (prelude included), checking both CRCs.
pub fn decode(bytes: &[u8]) -> Result<Message, String> {
    let prelude: &[u8; PRELUDE] = bytes
        .get(..PRELUDE)
        .and_then(|p| p.try_into().ok())
        .ok_or("an event-stream message is shorter than its prelude")?;
    let total = total_length(prelude)?;
    if bytes.len() != total {
        return Err(format!(
            "an event-stream message is {} bytes, its prelude says {total}",
            bytes.len()
        ));
    }
    if crc32fast::hash(&bytes[..total - 4]) != u32_at(bytes, total - 4) {
        return Err("an event-stream message has a bad checksum".into());
    }
    let headers_end = PRELUDE + u32_at(bytes, 4) as usize;
    let mut headers = Vec::new();
    let mut at = PRELUDE;
    let short = || "an event-stream header is cut short".to_string();
    while at < headers_end {
        let name_len = *bytes.get(at).ok_or_else(short)? as usize;
        let name = bytes.get(at + 1..at + 1 + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += 1 + name_len;
        let kind = *bytes.get(at).ok_or_else(short)?;
        at += 1;
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            other => return Err(format!("an event-stream header has unknown type {other}")),
        };
        let value = match fixed {
            Some(n) => {
                at += n;
                HeaderValue::Other
            }
            None => {
                let len = bytes.get(at..at + 2).ok_or_else(short)?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                let raw = bytes.get(at + 2..at + 2 + len).ok_or_else(short)?;
                at += 2 + len;
                if kind == 7 {
                    HeaderValue::String(String::from_utf8_lossy(raw).into_owned())
                } else {
                    HeaderValue::Other
                }
            }
        };
        if at > headers_end {
            return Err(short());
        }
        headers.push((name, value));
    }
    Ok(Message {
        headers,
        payload: bytes[headers_end..total - 4].to_vec(),
    })
}

/// Encodes a message with string headers (tests and fixtures build streams with it).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out
}

/// An `event` message of this type, as Bedrock sends them.
pub fn encode_event(event_type: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

/// A whole stream from a JSON list of `[event-type, payload]` pairs (fixtures); an
/// event-type ending in `Exception` is sent as an exception message.
pub fn encode_stream(list: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    for pair in list.as_array().into_iter().flatten() {
        let kind = pair[0].as_str().unwrap_or_default();
        let payload = pair[1].to_string();
        if kind.ends_with("Exception") {
            out.extend(encode(
                &[
                    (":exception-type", kind),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                payload.as_bytes(),
            ));
        } else {
            out.extend(encode_event(kind, &payload));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_and_becomes_an_event() {
        let bytes = encode_event("contentBlockDelta", r#"{"delta":{"text":"Hi"}}"#);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.header(":event-type"), Some("contentBlockDelta"));
        let e = m.into_event();
        assert_eq!(e.event.as_deref(), Some("contentBlockDelta"));
        assert_eq!(e.data, r#"{"delta":{"text":"Hi"}}"#);
    }

    /// AWS's documented example: an empty message is 16 bytes, and the CRCs are fixed.
    #[test]
    fn the_empty_message_matches_the_reference_bytes() {
        let bytes = encode(&[], b"");
        assert_eq!(
            bytes,
            [0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff]
        );
        assert_eq!(decode(&bytes).unwrap().payload, b"");
    }

    #[test]
    fn corrupted_checksums_are_errors_not_panics() {
        let good = encode_event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        let mut bad = good.clone();
        bad[20] ^= 0x01;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        let mut bad = good.clone();
        bad[9] ^= 0x01;
        assert!(decode(&bad).unwrap_err().contains("prelude"));
        assert!(decode(&good[..5]).is_err());
        assert!(decode(&good[..good.len() - 1]).is_err());
    }

    #[test]
    fn non_string_headers_are_skipped() {
        // A header of each fixed-size type, then a string one.
        let mut h = Vec::new();
        for (kind, len) in [
            (0u8, 0usize),
            (2, 1),
            (3, 2),
            (4, 4),
            (5, 8),
            (8, 8),
            (9, 16),
        ] {
            h.extend_from_slice(&[1, b'x', kind]);
            h.extend(std::iter::repeat_n(0xAB, len));
        }
        h.extend_from_slice(&[1, b'b', 6, 0, 2, 1, 2]);
        h.extend_from_slice(&[2, b'o', b'k', 7, 0, 3, b'y', b'e', b's']);
        let total = PRELUDE + h.len() + 4;
        let mut bytes = (total as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&(h.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        let m = decode(&bytes).unwrap();
        assert_eq!(m.header("ok"), Some("yes"));
        assert_eq!(m.headers.len(), 9);
    }

    #[test]
    fn exceptions_and_errors_name_their_type() {
        let bytes = encode(
            &[
                (":exception-type", "throttlingException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let e = decode(&bytes).unwrap().into_event();
        assert_eq!(e.event.as_deref(), Some("throttlingException"));
        assert_eq!(e.data, r#"{"message":"slow down"}"#);
        let bytes = encode(
            &[
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
                (":message-type", "error"),
            ],
            b"",
        );
        let e = decode(&bytes).unwrap().into_event();
        assert_eq!(e.event.as_deref(), Some("InternalFailure"));
        assert_eq!(e.data, r#"{"message":"boom"}"#);
    }
}
