//! The API documentation: `GET /openapi.json` (this gateway's OpenAPI 3.1 description, made by
//! `scripts/gen-openapi.py`), Swagger UI at `/docs` and ReDoc at `/redoc`. Their scripts and
//! styles are embedded in the binary (`assets/`, vendored from npm), and the pages refer only
//! to relative URLs, so the docs work with no network and behind a path prefix.

use crate::http::{Responder, Response};
use crate::reply::Exchange;

/// The description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

const SWAGGER_UI_VERSION: &str = "5.35.0";
const SWAGGER_UI_SCRIPT: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_STYLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");
const REDOC_VERSION: &str = "2.5.4";
const REDOC_SCRIPT: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

/// Pages and the description may change with any release: the browser asks again each time.
const REVALIDATE: &str = "no-cache";
/// Assets are linked with their version in the URL (`?v=`), so they never go stale.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn send(x: &Exchange<'_>, res: &mut Responder<'_>, content_type: &str, body: &[u8], cache: &str) {
    let mut response = Response::new(200, content_type, body);
    response.headers.extend(x.headers());
    response.headers.extend([
        ("cache-control".into(), cache.into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]);
    x.record().http_status = 200;
    let _ = res.send(response);
}

/// How a page links to its siblings: relative to `/docs` the description is `openapi.json`
/// and the assets are under `docs/`; relative to `/docs/` both are one level deeper.
fn relative(x: &Exchange<'_>, dir: &str) -> (&'static str, String) {
    if x.req.path().ends_with('/') {
        ("../", String::new())
    } else {
        ("", format!("{dir}/"))
    }
}

/// `GET /openapi.json`.
pub fn openapi(x: &Exchange<'_>, res: &mut Responder<'_>) {
    send(x, res, "application/json", OPENAPI.as_bytes(), REVALIDATE);
}

/// `GET /docs`: Swagger UI; "Try it out" calls this gateway (the description's server is `/`).
pub fn swagger_ui(x: &Exchange<'_>, res: &mut Responder<'_>) {
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
    send(
        x,
        res,
        "text/html; charset=utf-8",
        page.as_bytes(),
        REVALIDATE,
    );
}

/// `GET /docs/swagger-ui-bundle.js`.
pub fn swagger_ui_script(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let js = "text/javascript; charset=utf-8";
    send(x, res, js, SWAGGER_UI_SCRIPT, IMMUTABLE);
}

/// `GET /docs/swagger-ui.css`.
pub fn swagger_ui_style(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let css = "text/css; charset=utf-8";
    send(x, res, css, SWAGGER_UI_STYLE, IMMUTABLE);
}

/// `GET /redoc`: ReDoc.
pub fn redoc(x: &Exchange<'_>, res: &mut Responder<'_>) {
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
    send(
        x,
        res,
        "text/html; charset=utf-8",
        page.as_bytes(),
        REVALIDATE,
    );
}

/// `GET /redoc/redoc.standalone.js`.
pub fn redoc_script(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let js = "text/javascript; charset=utf-8";
    send(x, res, js, REDOC_SCRIPT, IMMUTABLE);
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
}
