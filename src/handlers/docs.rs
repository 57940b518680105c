//! The API documentation: `GET /openapi.json` (this gateway's OpenAPI 3.1 description, made by
//! `scripts/gen-openapi.py`), Swagger UI at `/docs` and ReDoc at `/redoc`. Their scripts and
//! styles are embedded in the binary (`assets/`, vendored from npm), and the pages refer only
//! to relative URLs, so the docs work with no network and behind a path prefix. The assets are
//! embedded gzip-compressed (a quarter of the size): sent as they are to clients that accept
//! gzip (every browser), decompressed for the rest.

use std::io::Read;

use crate::exchange::Exchange;
use crate::http::{Responder, Response};

/// The description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

const SWAGGER_UI_VERSION: &str = "5.35.0";
const SWAGGER_UI_SCRIPT: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js.gz");
const SWAGGER_UI_STYLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css.gz");
const REDOC_VERSION: &str = "2.5.4";
const REDOC_SCRIPT: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js.gz");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Pages and the description may change with any release: the browser asks again each time.
const REVALIDATE: &str = "no-cache";
/// Assets are linked with their version in the URL (`?v=`), so they never go stale.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Sends a page or the description; the browser revalidates them each time.
fn send(x: &Exchange, res: &mut Responder<'_>, content_type: &str, body: &[u8]) {
    let mut response = Response::new(200, content_type, body);
    response.headers.extend([
        ("cache-control".into(), REVALIDATE.into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]);
    let _ = x.send(res, response);
}

/// How a page links to its siblings: relative to `/docs` the description is `openapi.json`
/// and the assets are under `docs/`; relative to `/docs/` both are one level deeper.
fn relative(x: &Exchange, dir: &str) -> (&'static str, String) {
    if x.req.path().ends_with('/') {
        ("../", String::new())
    } else {
        ("", format!("{dir}/"))
    }
}

/// Whether `accept-encoding` allows gzip (present, and not with `q=0`).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Sends an embedded gzip asset: compressed when the client takes gzip, else decompressed.
fn send_gzipped(x: &Exchange, res: &mut Responder<'_>, content_type: &str, gz: &[u8]) {
    let accept = x.req.header("accept-encoding").unwrap_or("");
    let mut response = if accepts_gzip(accept) {
        Response::new(200, content_type, gz).with_header("content-encoding", "gzip")
    } else {
        let mut plain = Vec::with_capacity(gz.len() * 4);
        let decoded = flate2::read::GzDecoder::new(gz).read_to_end(&mut plain);
        decoded.expect("embedded assets are valid gzip (tested)");
        Response::new(200, content_type, plain)
    };
    response.headers.extend([
        ("vary".into(), "accept-encoding".into()),
        ("cache-control".into(), IMMUTABLE.into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]);
    let _ = x.send(res, response);
}

/// `GET /openapi.json`.
pub fn openapi(x: &Exchange, res: &mut Responder<'_>) {
    send(x, res, "application/json", OPENAPI.as_bytes());
}

/// `GET /docs`: Swagger UI; "Try it out" calls this gateway (the description's server is `/`).
pub fn swagger_ui(x: &Exchange, res: &mut Responder<'_>) {
    let (up, assets) = relative(x, "docs");
    let v = SWAGGER_UI_VERSION;
    let page = format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLMCallGateway API · Swagger UI</title>
<link rel="stylesheet" href="{assets}swagger-ui.css?v={v}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js?v={v}"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{up}openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null
}});
</script>
</body>
</html>
"##
    );
    send(x, res, "text/html; charset=utf-8", page.as_bytes());
}

/// `GET /docs/swagger-ui-bundle.js`.
pub fn swagger_ui_script(x: &Exchange, res: &mut Responder<'_>) {
    send_gzipped(x, res, JS, SWAGGER_UI_SCRIPT);
}

/// `GET /docs/swagger-ui.css`.
pub fn swagger_ui_style(x: &Exchange, res: &mut Responder<'_>) {
    send_gzipped(x, res, CSS, SWAGGER_UI_STYLE);
}

/// `GET /redoc`: ReDoc.
pub fn redoc(x: &Exchange, res: &mut Responder<'_>) {
    let (up, assets) = relative(x, "redoc");
    let v = REDOC_VERSION;
    let page = format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLMCallGateway API · ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{up}openapi.json"></redoc>
<script src="{assets}redoc.standalone.js?v={v}"></script>
</body>
</html>
"##
    );
    send(x, res, "text/html; charset=utf-8", page.as_bytes());
}

/// `GET /redoc/redoc.standalone.js`.
pub fn redoc_script(x: &Exchange, res: &mut Responder<'_>) {
    send_gzipped(x, res, JS, REDOC_SCRIPT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_json_for_this_version_with_a_relative_server() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["servers"], serde_json::json!([{"url": "/"}]));
    }

    #[test]
    fn embedded_gzip_assets_are_exactly_the_vendored_files() {
        let pairs: [(&[u8], &[u8]); 3] = [
            (
                SWAGGER_UI_SCRIPT,
                include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
            ),
            (
                SWAGGER_UI_STYLE,
                include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
            ),
            (
                REDOC_SCRIPT,
                include_bytes!("../../assets/redoc/redoc.standalone.js"),
            ),
        ];
        for (gz, plain) in pairs {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(gz)
                .read_to_end(&mut out)
                .unwrap();
            assert!(
                out == plain,
                "a .gz differs from its file: run gzip -9nkf on it"
            );
        }
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("deflate"));
    }
}
