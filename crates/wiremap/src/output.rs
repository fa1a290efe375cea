//! The readable table of `wiremap entries --format table`.

use wiremap_model::{Detail, Endpoint, Entry};

fn who(ep: &Endpoint) -> String {
    let id = ep.identity();
    if id.name.is_empty() {
        match ep.ip {
            std::net::IpAddr::V6(_) => format!("[{}]:{}", ep.ip, ep.port),
            _ => format!("{}:{}", ep.ip, ep.port),
        }
    } else {
        format!("{}:{}", id.name, ep.port)
    }
}

fn summary(e: &Entry) -> String {
    match &e.detail {
        Detail::Http(h) => {
            let status = if e.has_response {
                e.status_code.to_string()
            } else {
                "-".into()
            };
            format!("{} {} {}", h.method, h.url, status)
        }
        Detail::Dns(d) => {
            let q: Vec<String> = d
                .questions
                .iter()
                .zip(&d.question_types)
                .map(|(n, t)| format!("{t} {n}"))
                .collect();
            let rcode = if e.has_response {
                format!("rcode={}", e.status_code)
            } else {
                "no answer".into()
            };
            format!("{} {} {}", q.join(","), rcode, d.answers.join(","))
        }
        Detail::Tls(t) => format!(
            "{} sni={} alpn={}",
            t.client_version,
            t.sni,
            t.alpn.join(",")
        ),
        Detail::Conn(c) => format!(
            "{} {}↑ {}↓ {}",
            c.state, e.request_size, e.response_size, c.error_type
        ),
        Detail::App(a) => a
            .fields
            .iter()
            .filter(|(k, _)| {
                !k.ends_with("_size")
                    && !k.ends_with("_length")
                    && !k.ends_with("_request")
                    && !k.ends_with("_response")
            })
            .map(|(k, v)| match v {
                wiremap_model::AppVal::Str(s) => format!("{k}={s}"),
                wiremap_model::AppVal::Int(i) => format!("{k}={i}"),
                wiremap_model::AppVal::Bool(b) => format!("{k}={b}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Detail::None => String::new(),
    }
}

pub fn table_header() -> String {
    format!(
        "{:<27} {:<5} {:<40} {:<40} {:>11}  {}",
        "TIME", "PROTO", "SOURCE", "DESTINATION", "LATENCY", "SUMMARY"
    )
}

pub fn table_row(e: &Entry) -> String {
    // An unanswered request has no latency (its 0 is a placeholder), and says so.
    let lat = if e.has_response {
        format!("{}us", e.elapsed_time)
    } else {
        "no response".into()
    };
    format!(
        "{:<27} {:<5} {:<40} {:<40} {:>11}  {}",
        e.timestamp.to_string(),
        e.protocol.as_str(),
        who(&e.src),
        who(&e.dst),
        lat,
        summary(e).trim_end()
    )
}
