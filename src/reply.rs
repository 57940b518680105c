//! One request's exchange with its client: the request id, the headers every answer carries
//! (`x-request-id`, CORS), and the ways to answer: JSON, an error in the OpenAI shape, or an
//! SSE stream whose events (errors included) are written as they come.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::ApiError;
use crate::http::{ClientGone, Request, Responder, Response, Stream};
use crate::routes::Gateway;

/// Headers a browser client may read from our answers.
const EXPOSED_HEADERS: &str =
    "x-request-id, x-gateway-overhead-ms, retry-after, retry-after-ms, x-should-retry";

pub struct Exchange<'a> {
    pub gw: &'a Gateway,
    pub req: &'a Request,
    pub request_id: String,
    common: Vec<(String, String)>,
}

impl<'a> Exchange<'a> {
    pub fn new(gw: &'a Gateway, req: &'a Request) -> Self {
        let request_id = match req.header("x-request-id") {
            Some(id) if is_sane_request_id(id) => id.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let mut common = vec![("x-request-id".to_string(), request_id.clone())];
        if let Some(origin) = req.header("origin") {
            if let Some(allowed) = gw.allowed_origin(origin) {
                common.push(("access-control-allow-origin".into(), allowed.to_string()));
                common.push((
                    "access-control-expose-headers".into(),
                    EXPOSED_HEADERS.into(),
                ));
                if allowed != "*" {
                    common.push(("vary".into(), "origin".into()));
                }
            }
        }
        Exchange {
            gw,
            req,
            request_id,
            common,
        }
    }

    /// The headers every answer to this request carries.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.common.clone()
    }

    /// Time spent in the gateway so far, not counting `upstream` (time waiting for a provider).
    pub fn overhead(&self, upstream: Duration) -> (&'static str, String) {
        let total = self.req.received_at.elapsed();
        let ms = total.saturating_sub(upstream).as_secs_f64() * 1000.0;
        ("x-gateway-overhead-ms", format!("{ms:.3}"))
    }

    pub fn send_json(
        &self,
        res: &mut Responder<'_>,
        status: u16,
        body: Vec<u8>,
        extra: Vec<(String, String)>,
    ) -> Result<(), ClientGone> {
        let mut response = Response::new(status, "application/json", body);
        response.headers.extend(self.common.iter().cloned());
        response.headers.extend(extra);
        res.send(response)
    }

    pub fn send_value(
        &self,
        res: &mut Responder<'_>,
        value: &Value,
        upstream: Duration,
    ) -> Result<(), ClientGone> {
        let (name, ms) = self.overhead(upstream);
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.send_json(res, 200, body, vec![(name.into(), ms)])
    }

    /// Answers with an error (when nothing was sent yet).
    pub fn send_error(&self, res: &mut Responder<'_>, error: &ApiError) {
        if res.is_started() {
            return;
        }
        if error.status >= 500 {
            log::warn!(
                "request {} failed: {} {}",
                self.request_id,
                error.status,
                error.message
            );
        }
        let _ = self.send_json(res, error.status, error.to_body(), error.headers.clone());
    }

    /// Starts an SSE answer with the common headers plus `extra`.
    pub fn start_sse<'r, 's>(
        &self,
        res: &'r mut Responder<'s>,
        extra: Vec<(String, String)>,
    ) -> Result<Stream<'r, 's>, ClientGone> {
        let mut headers = vec![
            ("content-type".to_string(), "text/event-stream".to_string()),
            ("cache-control".into(), "no-cache".into()),
            ("x-accel-buffering".into(), "no".into()),
        ];
        headers.extend(self.common.iter().cloned());
        headers.extend(extra);
        res.stream(200, &headers)
    }
}

/// A client's own request id is kept when it is 1–128 printable ASCII characters.
fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Writes one SSE `data:` event.
pub fn sse_data(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Ends a stream after a failure: one `data:` event with the error object, then the end of
/// the body. No `[DONE]`, so no client mistakes the stream for a complete one.
pub fn end_with_error(mut stream: Stream<'_, '_>, error: &ApiError) -> Result<(), ClientGone> {
    let mut out = Vec::new();
    sse_data(&mut out, &error.to_value().to_string());
    stream.send(&out)?;
    stream.finish()
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Since `start`, for logs and headers.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_printable_ascii() {
        assert!(is_sane_request_id("req-123_abc"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id(&"x".repeat(129)));
        assert!(!is_sane_request_id("naïve"));
    }
}
