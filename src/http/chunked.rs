//! The chunked transfer coding of a response body (RFC 9112 §7.1), as both writers of a
//! stream frame it: a worker's `Stream` and the relay loop.

use std::io::Write;

/// Appends `data` to a chunked body as one chunk (none when empty: an empty chunk would end
/// the body), then, when `last`, the chunk that ends the body.
pub(super) fn frame_chunk(out: &mut Vec<u8>, data: &[u8], last: bool) {
    if !data.is_empty() {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    if last {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}
