//! The SSE reader and the AWS event-stream decoder: arbitrary bytes are an error or events,
//! never a panic; events framed by the rules come back exactly, however the bytes are split
//! into reads; a corrupted event-stream message is always caught by its checksums.

use std::io::{self, Read};

use llmcallgateway::upstream::eventstream::{self, PRELUDE};
use llmcallgateway::upstream::sse::{EventReader, StreamError};
use llmcallgateway::upstream::SseEvent;
use proptest::prelude::*;

use super::bounded;

/// A body that hands out its bytes in reads of the given sizes (cycled), as a socket does.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Trickle {
    fn new(bytes: Vec<u8>, sizes: Vec<usize>) -> Trickle {
        Trickle {
            bytes,
            at: 0,
            sizes: if sizes.is_empty() { vec![4096] } else { sizes },
            turn: 0,
        }
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Every event until the end or the first error; bounded so a bug cannot loop forever.
fn read_all(mut reader: EventReader) -> (Vec<SseEvent>, Option<StreamError>) {
    let mut events = Vec::new();
    for _ in 0..100_000 {
        match reader.next_event() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
    panic!("the reader produced more events than its input could hold");
}

/// An SSE field value: no line breaks (a value cannot hold one).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r\n]{0,24}",
        r#"\{"[a-z]{1,6}":"[^"\\\r\n]{0,8}"\}"#,
        Just("[DONE]".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Framed {
    event: Option<String>,
    data: Vec<String>,
    comment: Option<String>,
    crlf: bool,
}

fn framed() -> impl Strategy<Value = Framed> {
    (
        prop::option::of(value()),
        prop::collection::vec(value(), 1..4),
        prop::option::of("[^\r\n]{0,10}"),
        any::<bool>(),
    )
        .prop_map(|(event, data, comment, crlf)| Framed {
            event,
            data,
            comment,
            crlf,
        })
}

fn encode_sse(events: &[Framed]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        let nl = if e.crlf { "\r\n" } else { "\n" };
        if let Some(c) = &e.comment {
            out.push_str(&format!(":{c}{nl}"));
        }
        if let Some(name) = &e.event {
            out.push_str(&format!("event: {name}{nl}"));
        }
        for line in &e.data {
            out.push_str(&format!("data: {line}{nl}"));
        }
        out.push_str(nl);
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(bounded(256))]

    #[test]
    fn sse_reader_takes_any_bytes_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in prop::collection::vec(1usize..64, 0..4),
    ) {
        let (events, _) = read_all(EventReader::new(Trickle::new(bytes.clone(), sizes)));
        // Every event's data came from `data:` lines of the input.
        for e in events {
            for line in e.data.split('\n') {
                prop_assert!(bytes.windows(line.len().max(1)).any(|w| line.is_empty() || w == line.as_bytes()));
            }
        }
    }

    #[test]
    fn sse_events_round_trip_however_the_body_is_split(
        events in prop::collection::vec(framed(), 0..12),
        sizes in prop::collection::vec(1usize..40, 0..5),
    ) {
        let bytes = encode_sse(&events);
        let (got, err) = read_all(EventReader::new(Trickle::new(bytes, sizes)));
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(got.len(), events.len());
        for (got, sent) in got.iter().zip(&events) {
            prop_assert_eq!(&got.event, &sent.event);
            prop_assert_eq!(&got.data, &sent.data.join("\n"));
        }
    }

    #[test]
    fn event_stream_decoder_takes_any_bytes_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = eventstream::decode(&bytes);
        let _ = read_all(EventReader::event_stream(io::Cursor::new(bytes)));
    }

    /// Frames with valid lengths and checksums around arbitrary header bytes: the header parser
    /// itself sees garbage. It answers an error or a message whose payload is where the
    /// prelude says.
    #[test]
    fn event_stream_headers_of_any_bytes_in_a_valid_frame_never_panic(
        headers in prop::collection::vec(any::<u8>(), 0..96),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let total = PRELUDE + headers.len() + payload.len() + 4;
        let mut bytes = (total as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        bytes.extend_from_slice(&headers);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        if let Ok(message) = eventstream::decode(&bytes) {
            prop_assert_eq!(message.payload, payload);
        }
    }

    #[test]
    fn event_stream_messages_round_trip_however_the_body_is_split(
        messages in prop::collection::vec(("[a-zA-Z]{1,20}", ".{0,40}"), 0..8),
        sizes in prop::collection::vec(1usize..40, 0..5),
    ) {
        let mut bytes = Vec::new();
        for (kind, payload) in &messages {
            bytes.extend(eventstream::encode_event(kind, payload));
        }
        let (got, err) = read_all(EventReader::event_stream(Trickle::new(bytes, sizes)));
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(got.len(), messages.len());
        for (got, (kind, payload)) in got.iter().zip(&messages) {
            prop_assert_eq!(got.event.as_deref(), Some(kind.as_str()));
            prop_assert_eq!(&got.data, payload);
        }
    }

    #[test]
    fn any_string_headers_round_trip_through_encode_and_decode(
        headers in prop::collection::vec(("[a-z:-]{1,30}", ".{0,30}"), 0..5),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let borrowed: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let message = eventstream::decode(&eventstream::encode(&borrowed, &payload)).unwrap();
        prop_assert_eq!(&message.payload, &payload);
        for (name, value) in &headers {
            // The first header of a name is the one `header` finds.
            let first = headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            prop_assert_eq!(message.header(name), first);
            let _ = value;
        }
    }

    /// CRC-32 catches every single-bit error: no flipped bit yields a message.
    #[test]
    fn a_flipped_bit_anywhere_in_a_message_is_an_error(
        kind in "[a-zA-Z]{1,16}",
        payload in ".{0,40}",
        bit in any::<prop::sample::Index>(),
    ) {
        let mut bytes = eventstream::encode_event(&kind, &payload);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(eventstream::decode(&bytes).is_err());
        let (events, err) = read_all(EventReader::event_stream(io::Cursor::new(bytes)));
        prop_assert!(events.is_empty() && err.is_some());
    }
}
