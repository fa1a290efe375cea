//! The columns of the `entries` table and the conversion of an [`Entry`] to and from one
//! RowBinary row. Every KFL variable that an entry fills reads from these columns (see
//! `wiremap_kfl`'s SQL module for the names it expects); together they rebuild the entry
//! exactly.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use wiremap_map::Sketch;
use wiremap_model::{
    AppInfo, AppVal, ConnInfo, Detail, DnsInfo, Endpoint, Entry, HttpInfo, Identity, IdentityKind,
    Protocol, Timestamp, TlsInfo, Transport,
};

use crate::rowbinary::{Reader, Writer};
use crate::Error;

/// The columns of one side (`src_…`, `dst_…`), after the prefix.
const SIDE: &[(&str, &str)] = &[
    ("ip", "String"),
    ("port", "UInt16"),
    ("identity", "UInt8"),
    ("kind", "UInt8"),
    ("name", "String"),
    ("namespace", "String"),
    ("dns", "String"),
    ("zone", "String"),
    ("pod", "String"),
    ("service", "String"),
    ("workload_kind", "String"),
    ("workload_name", "String"),
    ("node", "String"),
    ("labels_keys", "Array(String)"),
    ("labels_values", "Array(String)"),
    ("resolution_status", "String"),
];

/// The side columns that name an endpoint in the rollups (labels are kept beside them).
pub(crate) const SIDE_KEY: &[&str] = &[
    "ip",
    "identity",
    "kind",
    "name",
    "namespace",
    "dns",
    "zone",
    "pod",
    "service",
    "workload_kind",
    "workload_name",
    "node",
    "resolution_status",
];

const HEAD: &[(&str, &str)] = &[
    ("ts", "DateTime"),
    ("timestamp", "Int64"),
    ("id", "UInt64"),
    ("stream", "UInt64"),
    ("index", "UInt32"),
    ("elapsed_time", "Int64"),
    ("protocol", "String"),
    ("transport", "UInt8"),
    ("request_size", "UInt64"),
    ("response_size", "UInt64"),
    ("has_response", "UInt8"),
    ("status_code", "Int64"),
    ("error", "UInt8"),
    ("node_name", "String"),
    ("seen_by", "Array(String)"),
    ("client_isn", "Int64"),
    ("lat_bucket", "Int32"),
];

const TAIL: &[(&str, &str)] = &[
    ("detail", "String"),
    ("method", "String"),
    ("url", "String"),
    ("path", "String"),
    ("http_version", "String"),
    ("host", "String"),
    ("status_text", "String"),
    ("request_headers_keys", "Array(String)"),
    ("request_headers_values", "Array(String)"),
    ("response_headers_keys", "Array(String)"),
    ("response_headers_values", "Array(String)"),
    ("request_headers_size", "UInt64"),
    ("request_body_size", "UInt64"),
    ("response_headers_size", "UInt64"),
    ("response_body_size", "UInt64"),
    ("upgrade", "String"),
    ("gql_operation", "String"),
    ("query_string_keys", "Array(String)"),
    ("query_string_values", "Array(String)"),
    ("dns_questions", "Array(String)"),
    ("dns_question_types", "Array(String)"),
    ("dns_answers", "Array(String)"),
    ("dns_request_length", "UInt64"),
    ("dns_response_length", "UInt64"),
    ("tls_sni", "String"),
    ("tls_alpn", "Array(String)"),
    ("tls_client_version", "String"),
    ("tls_server_version", "String"),
    ("tls_server_alpn", "String"),
    ("conn_client_packets", "UInt64"),
    ("conn_server_packets", "UInt64"),
    ("conn_state", "String"),
    ("conn_error_type", "String"),
    ("app_keys", "Array(String)"),
    ("app_types", "Array(UInt8)"),
    ("app_str", "Array(String)"),
    ("app_int", "Array(Int64)"),
];

/// Every column of `entries`, in row order: (name, type).
pub(crate) fn entry_columns() -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> =
        HEAD.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    for p in ["src", "dst"] {
        v.extend(SIDE.iter().map(|(n, t)| (format!("{p}_{n}"), *t)));
    }
    v.extend(TAIL.iter().map(|(n, t)| (n.to_string(), *t)));
    v
}

/// The column list for `INSERT … (…)` and `SELECT …`, backquoted.
pub(crate) fn column_list() -> String {
    entry_columns()
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole seconds a timestamp falls in, as a `DateTime` holds them (clamped to its range;
/// windows are clamped the same way, so partitions and queries agree).
pub(crate) fn datetime_secs(t: Timestamp) -> u32 {
    t.nanos()
        .div_euclid(1_000_000_000)
        .clamp(0, i64::from(u32::MAX)) as u32
}

fn kind_code(k: IdentityKind) -> u8 {
    match k {
        IdentityKind::Pod => 0,
        IdentityKind::Service => 1,
        IdentityKind::Node => 2,
        IdentityKind::Dns => 3,
        IdentityKind::Hint => 4,
        IdentityKind::Zone => 5,
        IdentityKind::Ip => 6,
    }
}

pub(crate) fn kind_of(c: u8) -> Result<IdentityKind, Error> {
    Ok(match c {
        0 => IdentityKind::Pod,
        1 => IdentityKind::Service,
        2 => IdentityKind::Node,
        3 => IdentityKind::Dns,
        4 => IdentityKind::Hint,
        5 => IdentityKind::Zone,
        6 => IdentityKind::Ip,
        _ => return Err(Error::BadReply(format!("identity kind {c}"))),
    })
}

/// The model's static name for `s` out of `names` (`""` stays empty): a name outside the
/// vocabulary is a reply this binary does not understand.
fn vocabulary(names: &'static [&'static str], s: &str) -> Result<&'static str, Error> {
    if s.is_empty() {
        return Ok("");
    }
    wiremap_model::known_name(names, s).ok_or_else(|| Error::BadReply(format!("name {s:?}")))
}

pub(crate) fn resolution_status(s: &str) -> Result<&'static str, Error> {
    vocabulary(wiremap_model::RESOLUTION_STATUSES, s)
}

fn write_side(w: &mut Writer, ep: &Endpoint) {
    let id = ep.identity();
    w.str(&ep.ip.to_string());
    w.u16(ep.port);
    w.bool(ep.identity.is_some());
    w.u8(kind_code(id.kind));
    for s in [
        &id.name,
        &id.namespace,
        &id.dns,
        &id.zone,
        &id.pod,
        &id.service,
        &id.workload_kind,
        &id.workload_name,
        &id.node,
    ] {
        w.str(s);
    }
    w.strs(id.labels.keys().map(String::as_str));
    w.strs(id.labels.values().map(String::as_str));
    w.str(id.resolution_status);
}

fn pairs(w: &mut Writer, p: &[(String, String)]) {
    w.strs(p.iter().map(|(k, _)| k.as_str()));
    w.strs(p.iter().map(|(_, v)| v.as_str()));
}

/// The query string as KFL's `query_string` reads it.
fn query_pairs(url: &str) -> Vec<(&str, &str)> {
    match url.split_once('?') {
        Some((_, q)) => q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect(),
        None => Vec::new(),
    }
}

/// Appends `e` as one row.
pub(crate) fn write_entry(w: &mut Writer, e: &Entry) {
    w.u32(datetime_secs(e.timestamp));
    w.i64(e.timestamp.nanos());
    w.u64(e.id);
    w.u64(e.stream);
    w.u32(e.index);
    w.i64(e.elapsed_time);
    w.str(e.protocol.as_str());
    w.u8(match e.transport {
        Transport::Tcp => 0,
        Transport::Udp => 1,
    });
    w.u64(e.request_size);
    w.u64(e.response_size);
    w.bool(e.has_response);
    w.i64(e.status_code);
    w.bool(e.error);
    w.str(&e.node_name);
    w.strs(e.seen_by.iter().map(String::as_str));
    w.i64(e.client_isn.map_or(-1, i64::from));
    w.i32(Sketch::bucket_of(e.elapsed_time.max(0) as u64).unwrap_or(0));
    write_side(w, &e.src);
    write_side(w, &e.dst);
    let none = HttpInfo::default();
    let (kind, h) = match &e.detail {
        Detail::None => ("", &none),
        Detail::Http(h) => ("http", h.as_ref()),
        Detail::Dns(_) => ("dns", &none),
        Detail::Tls(_) => ("tls", &none),
        Detail::Conn(_) => ("conn", &none),
        Detail::App(_) => ("app", &none),
    };
    w.str(kind);
    for s in [
        &h.method,
        &h.url,
        &h.path,
        &h.http_version,
        &h.host,
        &h.status_text,
    ] {
        w.str(s);
    }
    pairs(w, &h.request_headers);
    pairs(w, &h.response_headers);
    for n in [
        h.request_headers_size,
        h.request_body_size,
        h.response_headers_size,
        h.response_body_size,
    ] {
        w.u64(n);
    }
    w.str(&h.upgrade);
    w.str(&h.gql_operation);
    let q = query_pairs(&h.url);
    w.strs(q.iter().map(|(k, _)| *k));
    w.strs(q.iter().map(|(_, v)| *v));
    let dns_none = DnsInfo::default();
    let d = match &e.detail {
        Detail::Dns(d) => d.as_ref(),
        _ => &dns_none,
    };
    w.strs(d.questions.iter().map(String::as_str));
    w.strs(d.question_types.iter().map(String::as_str));
    w.strs(d.answers.iter().map(String::as_str));
    w.u64(d.request_length);
    w.u64(d.response_length);
    let tls_none = TlsInfo::default();
    let t = match &e.detail {
        Detail::Tls(t) => t.as_ref(),
        _ => &tls_none,
    };
    w.str(&t.sni);
    w.strs(t.alpn.iter().map(String::as_str));
    w.str(&t.client_version);
    w.str(&t.server_version);
    w.str(&t.server_alpn);
    let conn_none = ConnInfo::default();
    let c = match &e.detail {
        Detail::Conn(c) => c.as_ref(),
        _ => &conn_none,
    };
    w.u64(c.client_packets);
    w.u64(c.server_packets);
    w.str(c.state);
    w.str(c.error_type);
    let app_none = AppInfo::default();
    let a = match &e.detail {
        Detail::App(a) => a.as_ref(),
        _ => &app_none,
    };
    w.strs(a.fields.iter().map(|(k, _)| *k));
    let types: Vec<u8> = a
        .fields
        .iter()
        .map(|(_, v)| match v {
            AppVal::Str(_) => 0,
            AppVal::Int(_) => 1,
            AppVal::Bool(_) => 2,
        })
        .collect();
    w.u8s(&types);
    w.strs(a.fields.iter().map(|(_, v)| match v {
        AppVal::Str(s) => s.as_str(),
        _ => "",
    }));
    let ints: Vec<i64> = a
        .fields
        .iter()
        .map(|(_, v)| match v {
            AppVal::Str(_) => 0,
            AppVal::Int(i) => *i,
            AppVal::Bool(b) => i64::from(*b),
        })
        .collect();
    w.i64s(&ints);
}

fn zip_pairs(k: Vec<String>, v: Vec<String>, what: &str) -> Result<Vec<(String, String)>, Error> {
    if k.len() != v.len() {
        return Err(Error::BadReply(format!("{what}: keys and values differ")));
    }
    Ok(k.into_iter().zip(v).collect())
}

/// Reads an identity's stored columns after its address (shared with the rollups).
pub(crate) fn read_identity(r: &mut Reader<'_>) -> Result<Option<Arc<Identity>>, Error> {
    let present = r.bool()?;
    let kind = kind_of(r.u8()?)?;
    let mut s = || r.str();
    let (name, namespace, dns, zone, pod, service) = (s()?, s()?, s()?, s()?, s()?, s()?);
    let (workload_kind, workload_name, node) = (s()?, s()?, s()?);
    let labels: BTreeMap<String, String> = zip_pairs(r.strs()?, r.strs()?, "labels")?
        .into_iter()
        .collect();
    let status = resolution_status(&r.str()?)?;
    Ok(present.then(|| {
        Arc::new(Identity {
            kind,
            name,
            namespace,
            dns,
            zone,
            pod,
            service,
            workload_kind,
            workload_name,
            node,
            labels,
            resolution_status: status,
        })
    }))
}

pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, Error> {
    s.parse()
        .map_err(|_| Error::BadReply(format!("address {s:?}")))
}

fn read_side(r: &mut Reader<'_>) -> Result<Endpoint, Error> {
    let ip = parse_ip(&r.str()?)?;
    let port = r.u16()?;
    Ok(Endpoint {
        ip,
        port,
        identity: read_identity(r)?,
    })
}

/// Reads one row written by [`write_entry`] (all of [`entry_columns`], in order).
pub(crate) fn read_entry(r: &mut Reader<'_>) -> Result<Entry, Error> {
    let _ts = r.u32()?;
    let timestamp = Timestamp(r.i64()?);
    let id = r.u64()?;
    let stream = r.u64()?;
    let index = r.u32()?;
    let elapsed_time = r.i64()?;
    let p = r.str()?;
    let protocol = Protocol::parse(&p).ok_or_else(|| Error::BadReply(format!("protocol {p:?}")))?;
    let transport = match r.u8()? {
        0 => Transport::Tcp,
        1 => Transport::Udp,
        t => return Err(Error::BadReply(format!("transport {t}"))),
    };
    let request_size = r.u64()?;
    let response_size = r.u64()?;
    let has_response = r.bool()?;
    let status_code = r.i64()?;
    let error = r.bool()?;
    let node_name = r.str()?;
    let seen_by = r.strs()?;
    let isn = r.i64()?;
    let client_isn = u32::try_from(isn).ok();
    let _lat_bucket = r.i32()?;
    let src = read_side(r)?;
    let dst = read_side(r)?;
    let kind = r.str()?;
    let mut h = HttpInfo::default();
    let mut s = || r.str();
    (
        h.method,
        h.url,
        h.path,
        h.http_version,
        h.host,
        h.status_text,
    ) = (s()?, s()?, s()?, s()?, s()?, s()?);
    h.request_headers = zip_pairs(r.strs()?, r.strs()?, "request headers")?;
    h.response_headers = zip_pairs(r.strs()?, r.strs()?, "response headers")?;
    h.request_headers_size = r.u64()?;
    h.request_body_size = r.u64()?;
    h.response_headers_size = r.u64()?;
    h.response_body_size = r.u64()?;
    h.upgrade = r.str()?;
    h.gql_operation = r.str()?;
    let _query_keys = r.strs()?;
    let _query_values = r.strs()?;
    let d = DnsInfo {
        questions: r.strs()?,
        question_types: r.strs()?,
        answers: r.strs()?,
        request_length: r.u64()?,
        response_length: r.u64()?,
    };
    let t = TlsInfo {
        sni: r.str()?,
        alpn: r.strs()?,
        client_version: r.str()?,
        server_version: r.str()?,
        server_alpn: r.str()?,
    };
    let c = ConnInfo {
        client_packets: r.u64()?,
        server_packets: r.u64()?,
        state: vocabulary(wiremap_model::CONN_STATES, &r.str()?)?,
        error_type: vocabulary(wiremap_model::CONN_ERRORS, &r.str()?)?,
    };
    let keys = r.strs()?;
    let types = r.u8s()?;
    let strs = r.strs()?;
    let ints = r.i64s()?;
    if types.len() != keys.len() || strs.len() != keys.len() || ints.len() != keys.len() {
        return Err(Error::BadReply(
            "application fields differ in length".into(),
        ));
    }
    let detail = match kind.as_str() {
        "" => Detail::None,
        "http" => Detail::Http(Box::new(h)),
        "dns" => Detail::Dns(Box::new(d)),
        "tls" => Detail::Tls(Box::new(t)),
        "conn" => Detail::Conn(Box::new(c)),
        "app" => {
            let mut fields = Vec::with_capacity(keys.len());
            for (((k, ty), s), i) in keys.iter().zip(types).zip(strs).zip(ints) {
                let v = match ty {
                    0 => AppVal::Str(s),
                    1 => AppVal::Int(i),
                    2 => AppVal::Bool(i != 0),
                    _ => return Err(Error::BadReply(format!("field type {ty}"))),
                };
                // A field this binary's dissectors never emit (a later version wrote it) is
                // left out rather than invented.
                if let Some(k) = wiremap_model::app_field(k) {
                    fields.push((k, v));
                }
            }
            Detail::App(Box::new(AppInfo { fields }))
        }
        other => return Err(Error::BadReply(format!("detail {other:?}"))),
    };
    Ok(Entry {
        id,
        stream,
        index,
        timestamp,
        elapsed_time,
        protocol,
        transport,
        src,
        dst,
        request_size,
        response_size,
        has_response,
        status_code,
        error,
        node_name,
        seen_by,
        client_isn,
        detail,
    })
}
