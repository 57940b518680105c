//! A provider connection's buffers, as ureq's `LazyBuffers` (the configured sizes, allocated
//! on first use, the same input bookkeeping) with two differences that matter when thousands of
//! streams are open at once (issue 18):
//!
//! - the output buffer is given back once a stream's body is read ([`CallBuffers::release_output`],
//!   called on the first read that does not wait, which only a stream's body makes): the
//!   request was sent long before and an open stream has nothing more to send. The next call on
//!   the pooled connection allocates it again;
//! - a request body is staged in the input buffer's free space as it stands (ureq grows the
//!   input buffer to 10 KiB of free space for that, and it stays that size for the connection's
//!   life). The input buffer is empty while a request is sent, so the space is the whole
//!   configured size; it grows only if less than a quarter of that is free.
//!
//! Together that is about 10 KB less per open stream (8 KiB output, 2 KiB of grown input).
//!
//! The output also holds what the transport has not sent yet ([`CallBuffers::defer_output`]):
//! ureq writes a request's head and then its body, each followed by a transmit, and the
//! transport sends them together (`transport.rs`). [`Buffers::output`] hands ureq the space
//! after those bytes.

use ureq::unversioned::transport::Buffers;

pub(super) struct CallBuffers {
    input_size: usize,
    output_size: usize,
    /// `input[consumed..filled]` is read and not yet taken by ureq; `input[filled..]` is free.
    input: Vec<u8>,
    filled: usize,
    consumed: usize,
    output: Vec<u8>,
    /// `output[..pending]` is written by ureq and not yet sent.
    pending: usize,
    /// Whether the last `input_consume` took anything (ureq's `can_use_input` needs it).
    progress: bool,
}

impl CallBuffers {
    pub(super) fn new(input_size: usize, output_size: usize) -> CallBuffers {
        CallBuffers {
            input_size: input_size.max(1),
            output_size: output_size.max(1),
            input: Vec::new(),
            filled: 0,
            consumed: 0,
            output: Vec::new(),
            pending: 0,
            progress: false,
        }
    }

    /// Frees the output buffer, unless it holds bytes not sent yet; the next
    /// [`Buffers::output`] allocates it again.
    pub(super) fn release_output(&mut self) {
        if self.output.capacity() > 0 && self.pending == 0 {
            self.output = Vec::new();
        }
    }

    /// Keeps the `amount` bytes ureq just wrote to [`Buffers::output`] for a later send; the
    /// next `output` starts after them. Returns the room left after them.
    pub(super) fn defer_output(&mut self, amount: usize) -> usize {
        self.pending += amount;
        assert!(self.pending <= self.output.len(), "more output than room");
        self.output.len() - self.pending
    }

    /// The bytes written and not yet sent.
    pub(super) fn pending_output(&self) -> &[u8] {
        &self.output[..self.pending]
    }

    /// Forgets the pending bytes, once sent.
    pub(super) fn output_sent(&mut self) {
        self.pending = 0;
    }

    /// The configured size of the output buffer.
    pub(super) fn output_size(&self) -> usize {
        self.output_size
    }

    fn ensure_output(&mut self) {
        if self.output.len() < self.output_size {
            self.output.resize(self.output_size, 0);
        }
    }

    /// The free part of the input buffer, allocated if it was not, after moving unconsumed
    /// bytes to the front when that frees space (as ureq's `ConsumeBuf`).
    fn free_input(&mut self) -> &mut [u8] {
        if self.input.is_empty() {
            self.input.resize(self.input_size, 0);
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.consumed > 0 && self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        &mut self.input[self.filled..]
    }
}

impl Buffers for CallBuffers {
    fn output(&mut self) -> &mut [u8] {
        self.ensure_output();
        &mut self.output[self.pending..]
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.free_input()
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled += amount;
        assert!(self.filled <= self.input.len(), "more input than room");
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed += amount;
        assert!(
            self.consumed <= self.filled,
            "consumed more input than read"
        );
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.ensure_output();
        let least = self.input_size / 4;
        let free = self.free_input().len();
        if free < least {
            self.input.resize(self.input.len() + least - free, 0);
        }
        (
            &mut self.input[self.filled..],
            &mut self.output[self.pending..],
        )
    }

    fn can_use_input(&self) -> bool {
        self.consumed < self.filled && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_taken_in_order_and_the_space_is_reused_once_consumed() {
        let mut b = CallBuffers::new(16, 8);
        assert!(b.input().is_empty());
        let room = b.input_append_buf();
        assert_eq!(room.len(), 16);
        room[..5].copy_from_slice(b"hello");
        b.input_appended(5);
        assert_eq!(b.input(), b"hello");
        assert!(!b.can_use_input(), "nothing consumed yet");
        b.input_consume(2);
        assert!(b.can_use_input());
        assert_eq!(b.input(), b"llo");
        assert_eq!(b.input_append_buf().len(), 11);
        b.input_consume(3);
        assert!(!b.can_use_input(), "all consumed");
        assert_eq!(
            b.input_append_buf().len(),
            16,
            "an emptied buffer starts over"
        );
    }

    #[test]
    fn unconsumed_input_moves_to_the_front_when_past_half_the_buffer() {
        let mut b = CallBuffers::new(16, 8);
        b.input_append_buf()[..12].copy_from_slice(b"abcdefghijkl");
        b.input_appended(12);
        b.input_consume(10);
        assert_eq!(b.input_append_buf().len(), 14);
        assert_eq!(b.input(), b"kl");
    }

    #[test]
    fn the_output_buffer_is_freed_on_release_and_comes_back_whole() {
        let mut b = CallBuffers::new(16, 8);
        b.output()[..3].copy_from_slice(b"GET");
        b.release_output();
        assert_eq!(b.output.capacity(), 0);
        assert_eq!(b.output(), &[0u8; 8][..]);
    }

    #[test]
    fn deferred_output_stays_put_and_the_next_write_goes_after_it() {
        let mut b = CallBuffers::new(16, 8);
        b.output()[..3].copy_from_slice(b"abc");
        assert_eq!(b.defer_output(3), 5);
        assert_eq!(b.output().len(), 5);
        b.output()[..2].copy_from_slice(b"de");
        assert_eq!(b.defer_output(2), 3);
        let (_, output) = b.tmp_and_output();
        assert_eq!(
            output.len(),
            3,
            "a body is staged after the pending bytes too"
        );
        b.release_output();
        assert_eq!(b.pending_output(), b"abcde", "pending bytes are not freed");
        b.output_sent();
        assert_eq!(b.output().len(), 8);
    }

    #[test]
    fn a_request_body_is_staged_in_free_input_without_growing_it() {
        let mut b = CallBuffers::new(16, 8);
        let (tmp, output) = b.tmp_and_output();
        assert_eq!((tmp.len(), output.len()), (16, 8));
        assert_eq!(b.input.len(), 16);
    }

    #[test]
    fn staging_grows_the_input_only_when_little_of_it_is_free() {
        let mut b = CallBuffers::new(16, 8);
        b.input_append_buf()[..14].copy_from_slice(b"HTTP/1.1 100 C");
        b.input_appended(14);
        let (tmp, _) = b.tmp_and_output();
        assert_eq!(tmp.len(), 4);
        assert_eq!(b.input(), b"HTTP/1.1 100 C", "unconsumed input is kept");
    }
}
