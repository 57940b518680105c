//! The interaction explorer's API: `GET /admin/interactions` (summaries of the recent
//! interactions, newest first, filtered and paged) and `GET /admin/interactions/{id}` (one
//! whole record as logged). Both read [`crate::explorer`]: the recorder's ring, then the
//! interaction files within a byte budget per query.

use serde_json::json;

use crate::error::ApiError;
use crate::events::rfc3339_micros;
use crate::exchange::Exchange;
use crate::explorer::{Cursor, Filter, Sources, SCAN_MAX_BYTES};
use crate::handlers::{percent_decode, query_param};
use crate::http::Responder;

/// Summaries per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

fn sources<'a>(x: &'a Exchange) -> Sources<'a> {
    let keeps_file = x.gw.config.log_bodies != crate::config::LogBodies::None;
    Sources {
        recent: x.gw.recorder.recent(),
        dir: keeps_file.then_some(x.gw.config.log_dir.as_path()),
    }
}

/// A time bound: Unix seconds (fractions allowed) or an RFC 3339 timestamp, as the lines'
/// own timestamp text (which compares in time order).
fn time_bound(value: &str) -> Option<String> {
    let t = match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..1e11).contains(&secs) => {
            time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok()?
        }
        Ok(_) => return None,
        Err(_) => {
            let format = time::format_description::well_known::Rfc3339;
            time::OffsetDateTime::parse(value, &format).ok()?
        }
    };
    Some(rfc3339_micros(t.to_offset(time::UtcOffset::UTC)))
}

/// `GET /admin/interactions?model=&provider=&status=&route=&since=&until=&q=&limit=&cursor=`.
pub fn list(x: &Exchange, res: &mut Responder<'_>) {
    let query = x.req.query();
    let param = |name: &str| query_param(query, name).filter(|v| !v.trim().is_empty());
    let mut filter = Filter {
        model: param("model"),
        provider: param("provider"),
        status: param("status"),
        route: param("route"),
        q: param("q"),
        ..Filter::default()
    };
    for (name, slot) in [("since", &mut filter.since), ("until", &mut filter.until)] {
        if let Some(value) = param(name) {
            match time_bound(&value) {
                Some(bound) => *slot = Some(bound),
                None => {
                    let message = format!(
                        "`{name}` must be Unix seconds or an RFC 3339 timestamp, not {value:?}."
                    );
                    return x.send_error(res, &ApiError::invalid(Some(name), message));
                }
            }
        }
    }
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                let message =
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}, not {l:?}.");
                return x.send_error(res, &ApiError::invalid(Some("limit"), message));
            }
        },
    };
    let cursor = match param("cursor") {
        None => None,
        Some(c) => match Cursor::decode(&c) {
            Some(cursor) => Some(cursor),
            None => {
                let message = "`cursor` is not one this gateway handed out (use `next_cursor` of a previous page).";
                return x.send_error(res, &ApiError::invalid(Some("cursor"), message));
            }
        },
    };
    let sources = sources(x);
    let page = sources.list(&filter, limit, cursor.as_ref());
    let recent = sources.recent.lock().unwrap_or_else(|e| e.into_inner());
    let body = json!({
        "object": "list",
        "data": page.data,
        "next_cursor": page.next.map(|c| c.encode()),
        "recent": {"held": page.recent, "capacity": recent.capacity()},
        "scan": {"bytes_read": page.scanned_bytes, "limit_bytes": SCAN_MAX_BYTES, "files": sources.dir.is_some()},
    });
    drop(recent);
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

/// `GET /admin/interactions/{id}`: the newest record with that request id, every field as
/// logged.
pub fn detail(x: &Exchange, res: &mut Responder<'_>, id: &str) {
    let id = percent_decode(id);
    let (found, scanned) = sources(x).find(&id);
    match found {
        Some(record) => {
            let body = serde_json::to_vec(&record).unwrap_or_default();
            let _ = x.send_json(res, 200, body, Vec::new());
        }
        None => {
            let files = match x.gw.config.log_bodies {
                crate::config::LogBodies::None => " (no interaction files are kept: LOG_BODIES=none)".to_string(),
                _ => format!(" and {scanned} bytes of the newest interaction files (at most {SCAN_MAX_BYTES} per query)"),
            };
            let message = format!(
                "No interaction with request id {id:?} among the recent ones held in memory{files}."
            );
            let e = ApiError::new(
                404,
                "invalid_request_error",
                Some("interaction_not_found"),
                message,
            );
            x.send_error(res, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_take_unix_seconds_or_rfc3339() {
        assert_eq!(
            time_bound("1764662400").as_deref(),
            Some("2025-12-02T08:00:00.000000+00:00")
        );
        assert_eq!(
            time_bound("2025-12-02T09:00:00+01:00").as_deref(),
            Some("2025-12-02T08:00:00.000000+00:00")
        );
        assert_eq!(time_bound("yesterday"), None);
        assert_eq!(time_bound("-5"), None);
    }
}
