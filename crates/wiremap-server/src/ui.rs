//! The web UI, embedded in the binary: `cargo build` is all it takes, and the page loads
//! nothing from anywhere but this server (the Content-Security-Policy says so to the browser).
//! The page is ES modules (`ui/*.js`) and one vendored bundle of graph libraries
//! (`ui/vendor/graph.js`, rebuilt from npm by `scripts/update-ui-vendor`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const APP_CSS: &str = include_str!("../ui/app.css");
/// The page's modules, by the name they import each other by (`./name`). The offline copy
/// rewrites those imports, so a module imports others only as `from "./name"`.
const MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("../ui/main.js")),
    ("data.js", include_str!("../ui/data.js")),
    ("layout.js", include_str!("../ui/layout.js")),
    ("render.js", include_str!("../ui/render.js")),
    ("panels.js", include_str!("../ui/panels.js")),
    ("exports.js", include_str!("../ui/exports.js")),
    ("format.js", include_str!("../ui/format.js")),
    ("vendor/graph.js", include_str!("../ui/vendor/graph.js")),
];
const VENDOR_LICENSES: &str = include_str!("../ui/vendor/LICENSES.txt");
// Layout runs in a worker that graphology starts from a blob: URL.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
                   style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:; \
                   frame-ancestors 'none'";

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

/// Every file of the UI: URL path, body, content type.
pub(crate) fn assets() -> impl Iterator<Item = (String, &'static str, &'static str)> {
    let js = "text/javascript; charset=utf-8";
    [
        ("/".to_string(), INDEX, "text/html; charset=utf-8"),
        ("/index.html".to_string(), INDEX, "text/html; charset=utf-8"),
        ("/app.css".to_string(), APP_CSS, "text/css; charset=utf-8"),
        (
            "/vendor/LICENSES.txt".to_string(),
            VENDOR_LICENSES,
            "text/plain; charset=utf-8",
        ),
    ]
    .into_iter()
    .chain(
        MODULES
            .iter()
            .map(move |(name, body)| (format!("/{name}"), *body, js)),
    )
}

pub(crate) fn serve(body: &'static str, kind: &'static str) -> Response {
    asset(body, kind)
}

/// Percent-encodes all but unreserved characters: the result is safe in a data: URL, in a
/// JSON string and inside an HTML script element alike.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b' '
                    | b'('
                    | b')'
                    | b'*'
                    | b'!'
                    | b','
                    | b';'
                    | b'='
                    | b'+'
                    | b':'
                    | b'/'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'?'
                    | b'@'
                    | b'$'
                    | b'|'
                    | b'^'
            )
        {
            out.push(b as char);
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{b:02X}"));
        }
    }
    out
}

/// One self-contained HTML file showing `map_json` (a map in the JSON of DESIGN §5) with the
/// interactive map, for sharing offline: no server, no network. Each module becomes a data:
/// URL named in an import map, its relative imports turned into those names (a data: URL
/// cannot resolve a relative one).
pub fn standalone_html(map_json: &str) -> String {
    // `</` inside a script element would end it early.
    let data = map_json.replace("</", "<\\/");
    let mut imports = String::from("{\"imports\":{");
    for (i, (name, body)) in MODULES.iter().enumerate() {
        let body = body.replace("from \"./", "from \"wiremap/");
        if i > 0 {
            imports.push(',');
        }
        imports.push_str(&format!(
            "\"wiremap/{name}\":\"data:text/javascript;charset=utf-8,{}\"",
            percent_encode(&body)
        ));
    }
    imports.push_str("}}");
    INDEX
        .replace(
            "<link rel=\"stylesheet\" href=\"app.css\">",
            &format!("<style>\n{APP_CSS}\n</style>"),
        )
        .replace(
            "<script type=\"module\" src=\"main.js\"></script>",
            &format!(
                "<script>window.WIREMAP_OFFLINE = {data};</script>\n\
                 <script type=\"importmap\">{imports}</script>\n\
                 <script type=\"module\">import \"wiremap/main.js\";</script>"
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_copy_inlines_every_module() {
        let html = standalone_html(r#"{"nodes":[],"edges":[],"note":"</script>"}"#);
        assert!(!html.contains("src=\"main.js\"") && !html.contains("href=\"app.css\""));
        assert!(html.contains("window.WIREMAP_OFFLINE = {\"nodes\":[],\"edges\":[],\"note\":\"<\\/script>\"};</script>"));
        let open = "<script type=\"importmap\">";
        let start = html.find(open).expect("import map") + open.len();
        let end = html[start..].find("</script>").expect("end") + start;
        let map: serde_json::Value = serde_json::from_str(&html[start..end]).expect("JSON");
        let imports = map["imports"].as_object().expect("imports");
        assert_eq!(imports.len(), MODULES.len());
        for (name, body) in MODULES {
            let url = imports[&format!("wiremap/{name}")].as_str().expect("url");
            let text = url
                .strip_prefix("data:text/javascript;charset=utf-8,")
                .expect("data URL");
            // Decoding gives the module back, relative imports renamed, nothing else changed.
            let mut bytes = Vec::new();
            let raw = text.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'%' {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 3]).expect("hex");
                    bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 3;
                } else {
                    bytes.push(raw[i]);
                    i += 1;
                }
            }
            let decoded = String::from_utf8(bytes).expect("utf-8");
            assert_eq!(decoded, body.replace("from \"./", "from \"wiremap/"));
            assert!(
                !decoded.contains("from \"./"),
                "{name} keeps a relative import"
            );
        }
    }
}
