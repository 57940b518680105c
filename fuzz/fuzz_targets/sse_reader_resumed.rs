//! Any bytes as a provider's SSE or AWS event-stream body, read by the relay loop's way
//! (`poll_event`, with the body saying "would block" at input-chosen points): the same events
//! and the same end as the blocking reader's, never a panic or a hang. The parser keeps its
//! partial state across each `Pending`, and this is where a lost or doubled byte would show.
#![no_main]

use std::io::{self, Read};
use std::task::Poll;

use libfuzzer_sys::fuzz_target;
use llmcallgateway::upstream::sse::{EventReader, SseEvent, StreamError};

/// Gives the body in pieces, a "would block" before each: the first byte of the input picks
/// the framing, the second the piece sizes.
struct Stuttering {
    data: Vec<u8>,
    at: usize,
    sizes: u8,
    blocked: bool,
}

impl Read for Stuttering {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.blocked && self.at < self.data.len() {
            self.blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.blocked = false;
        self.sizes = self.sizes.rotate_left(1);
        let piece = (usize::from(self.sizes % 7) + 1).min(buf.len());
        let n = piece.min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn reader(binary: bool, body: impl Read + Send + 'static) -> EventReader {
    if binary {
        EventReader::event_stream(body)
    } else {
        EventReader::new(body)
    }
}

/// Every event to the end; the last result says how it ended (`None`: the body's end).
fn outcome(result: Result<Option<SseEvent>, StreamError>) -> Option<String> {
    match result {
        Ok(Some(event)) => Some(format!("{:?} {}", event.event, event.data)),
        Ok(None) => None,
        Err(StreamError::Idle) => Some("idle".into()),
        Err(StreamError::Broken(why)) => Some(format!("broken: {why}")),
    }
}

fuzz_target!(|input: &[u8]| {
    let [mode, sizes, data @ ..] = input else {
        return;
    };
    let binary = mode % 2 == 1;
    let mut blocking = reader(binary, io::Cursor::new(data.to_vec()));
    let mut resumed = reader(
        binary,
        Stuttering {
            data: data.to_vec(),
            at: 0,
            sizes: *sizes,
            blocked: false,
        },
    );
    for _ in 0..=data.len() {
        let expected = blocking.next_event();
        let ended = !matches!(expected, Ok(Some(_)));
        let mut got = None;
        for _ in 0..=2 * data.len() + 2 {
            if let Poll::Ready(result) = resumed.poll_event() {
                got = Some(result);
                break;
            }
        }
        let got = got.expect("poll_event made progress on every other read");
        assert_eq!(outcome(got), outcome(expected));
        if ended {
            return;
        }
    }
    panic!("more events than bytes");
});
