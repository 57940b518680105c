//! `GET /health`: liveness with the version, uptime and the recorder queue's depth (records
//! waiting to be logged now, and the most ever seen waiting).

use serde_json::json;

use crate::exchange::Exchange;
use crate::http::Responder;

pub fn get(x: &Exchange, res: &mut Responder<'_>) {
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": x.gw.started.elapsed().as_secs_f64(),
        "recorder_queue": {
            "depth": x.gw.recorder.depth(),
            "max_depth": x.gw.recorder.max_depth(),
        },
    });
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}
