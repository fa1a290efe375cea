//! The web UI, embedded in the binary: `cargo build` is all it takes, and the page loads
//! nothing from anywhere but this server (the Content-Security-Policy says so to the browser).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const FORMAT_JS: &str = include_str!("../ui/format.js");
const APP_CSS: &str = include_str!("../ui/app.css");
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
                   style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub(crate) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn format_js() -> Response {
    asset(FORMAT_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// One self-contained HTML file showing `map_json` (a map in the JSON of DESIGN §5) with the
/// interactive map, for sharing offline: no server, no network.
pub fn standalone_html(map_json: &str) -> String {
    // `</` inside a script element would end it early.
    let data = map_json.replace("</", "<\\/");
    INDEX
        .replace(
            "<link rel=\"stylesheet\" href=\"app.css\">",
            &format!("<style>\n{APP_CSS}\n</style>"),
        )
        .replace(
            "<script src=\"format.js\"></script>",
            &format!(
                "<script>\n{}\n</script>",
                FORMAT_JS.replace("</script", "<\\/script")
            ),
        )
        .replace(
            "<script src=\"app.js\"></script>",
            &format!(
                "<script>window.WIREMAP_OFFLINE = {data};</script>\n<script>\n{}\n</script>",
                APP_JS.replace("</script", "<\\/script")
            ),
        )
}
