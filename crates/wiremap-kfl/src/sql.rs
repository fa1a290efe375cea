//! Rendering a compiled filter as a ClickHouse `WHERE` clause over the entries table.
//!
//! The SQL runs on ClickHouse 18.16 (Debian 12's server) and on current releases: no
//! `DateTime64`, no `Map` or `Bool` types, no `true`/`false` literals. The columns it reads
//! (`wiremap-clickhouse` creates them):
//!
//! - a column per stored fact, named as its variable with dots as underscores (`src_ip`,
//!   `src_namespace`, `dst_workload_name`, `node_name`, `method`, `dns_questions`, …);
//! - `timestamp`: Int64 nanoseconds (timestamps and durations render as Int64 nanoseconds);
//! - booleans are UInt8 expressions (`protocol IN ('http', 'grpc', 'gql')` for `http`);
//! - a string map `x` is two arrays, `x_keys` and `x_values` (`src_labels_keys`, …,
//!   `request_headers_keys`, `query_string_keys`);
//! - derived variables are expressions over those (`src.pod.name` falls back to the service,
//!   `grpc_status` is -1 off gRPC, `namespaces` drops empty sides), exactly as the evaluator
//!   reads them;
//! - the fields of application protocols (`redis_command`, `kafka_api_key`, …) live in
//!   parallel arrays `app_keys`, `app_types` (0 text, 1 number, 2 flag), `app_str`,
//!   `app_int`, so a dissector can add a field without a schema change;
//! - variables wiremap never fills render as their default value.
//!
//! Every literal is escaped. What cannot be said with the evaluator's exact meaning is a
//! [`SqlError`] (the caller then filters in Rust): indexing a map or list with `[]` (a missing
//! key is an error that CEL propagates through `!` and `&&`, which 18.16's `NULL` logic does
//! not), `/` and `%` by anything but a non-zero constant, whole-map comparison, and
//! conversions with no ClickHouse equivalent (`bool()`, `timestamp()`/`duration()` of a
//! non-constant). Integer arithmetic wraps in ClickHouse where CEL reports an overflow.

use std::fmt::Write;
use std::net::IpAddr;

use crate::ast::Op;
use crate::limits::guarded;
use crate::node::{Comp, Const, Conv, Node, StrFn};
use crate::schema::{Flag, IdField, Side, Type, Var};

/// A construct the SQL backend does not express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot express in SQL: {0}")]
pub struct SqlError(pub String);

fn unsupported<T>(what: &str) -> Result<T, SqlError> {
    Err(SqlError(what.into()))
}

/// A ClickHouse string literal.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        match c {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\0' => o.push_str("\\0"),
            c => o.push(c),
        }
    }
    o.push('\'');
    o
}

fn col(name: &str) -> String {
    format!("`{name}`")
}

fn konst(c: &Const) -> String {
    match c {
        Const::Bool(b) => if *b { "1" } else { "0" }.into(),
        Const::Int(i) => format!("toInt64({i})"),
        Const::Uint(u) => format!("toUInt64({u})"),
        Const::Double(d) if d.is_finite() => format!("toFloat64({d:?})"),
        Const::Double(d) => {
            if d.is_nan() {
                "nan".into()
            } else if *d > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        Const::Str(s) => quote(s),
        Const::Bytes(b) => {
            let mut o = String::from("unhex('");
            for x in b {
                let _ = write!(o, "{x:02X}");
            }
            o.push_str("')");
            o
        }
        Const::Timestamp(t) => format!("toInt64({t})"),
        Const::Duration(d) => format!("toInt64({d})"),
        Const::Null => "NULL".into(),
    }
}

/// The default of a type, as SQL (absent variables take it).
fn default_sql(t: &Type) -> Result<Rendered, SqlError> {
    Ok(Rendered::Expr(match t {
        Type::Bool => "0".into(),
        Type::Int | Type::Timestamp | Type::Duration => "toInt64(0)".into(),
        Type::Uint => "toUInt64(0)".into(),
        Type::Double => "toFloat64(0)".into(),
        Type::Str => "''".into(),
        Type::Bytes => "''".into(),
        Type::List(_) => "emptyArrayString()".into(),
        Type::Map(..) => {
            return Ok(Rendered::Map(
                "emptyArrayString()".into(),
                "emptyArrayString()".into(),
            ))
        }
        Type::Null | Type::Dyn => "NULL".into(),
    }))
}

/// Comprehension variables in scope: their SQL names and, when known, their types.
pub(crate) type Locals = Vec<(String, Option<Type>)>;

/// A rendered subexpression: a value, or a string map as its key and value arrays.
enum Rendered {
    Expr(String),
    Map(String, String),
}

fn side_prefix(s: Side) -> &'static str {
    match s {
        Side::Src => "src",
        Side::Dst => "dst",
    }
}

fn app_lookup(k: &str, t: &Type) -> Result<String, SqlError> {
    let i = format!("indexOf(`app_keys`, {})", quote(k));
    // A field of another type reads as the default, like the evaluator does.
    Ok(match t {
        Type::Str => format!("if(`app_types`[{i}] = 0, `app_str`[{i}], '')"),
        Type::Int => format!("if(`app_types`[{i}] = 1, `app_int`[{i}], toInt64(0))"),
        Type::Bool => format!("(`app_types`[{i}] = 2 AND `app_int`[{i}] != 0)"),
        _ => return Err(SqlError(format!("`{k}`: a field of type {}", t.name()))),
    })
}

/// How variable `v` (named `name`) of type `t` reads from the entries table.
fn var_sql(v: Var, t: &Type, name: &str) -> Result<Rendered, SqlError> {
    let e = |s: String| Ok(Rendered::Expr(s));
    let only = |cond: &str, x: &str, d: &str| format!("if({cond}, {x}, {d})");
    match v {
        Var::Side(s, f) => {
            let p = side_prefix(s);
            let c = |n: &str| format!("`{p}_{n}`");
            match f {
                IdField::Ip => e(c("ip")),
                IdField::Port => e(format!("toInt64({})", c("port"))),
                IdField::Name => e(c("name")),
                IdField::Namespace => e(c("namespace")),
                IdField::PodName => e(format!(
                    "if({pod} = '', {svc}, {pod})",
                    pod = c("pod"),
                    svc = c("service")
                )),
                IdField::PodNamespace => e(format!(
                    "if({} = '' AND {} = '', '', {})",
                    c("pod"),
                    c("service"),
                    c("namespace")
                )),
                IdField::ServiceName => e(c("service")),
                IdField::ServiceNamespace => {
                    e(format!("if({} = '', '', {})", c("service"), c("namespace")))
                }
                IdField::WorkloadKind => e(c("workload_kind")),
                IdField::WorkloadName => e(c("workload_name")),
                IdField::Labels => Ok(Rendered::Map(c("labels_keys"), c("labels_values"))),
                IdField::Zone => e(c("zone")),
                IdField::Dns => e(c("dns")),
                IdField::Node => e(c("node")),
                IdField::Status => e(c("resolution_status")),
            }
        }
        Var::Protocol => e(col("protocol")),
        Var::Id => e("toInt64(`id`)".into()),
        Var::Index => e("toInt64(`index`)".into()),
        Var::Stream => e("toString(`stream`)".into()),
        Var::StreamId => e("toInt64(`stream`)".into()),
        Var::Timestamp => e(col("timestamp")),
        Var::ElapsedTime => e(col("elapsed_time")),
        Var::NodeName => e(col("node_name")),
        Var::NodeMap => Ok(Rendered::Map(
            "['name', 'ip']".into(),
            "[`node_name`, '']".into(),
        )),
        Var::Flag(f) => e(match f {
            Flag::Is(p) => format!("(`protocol` = {})", quote(p.as_str())),
            Flag::Http => "(`protocol` IN ('http', 'grpc', 'gql'))".into(),
            Flag::Conn => "(`protocol` IN ('tcp', 'udp'))".into(),
        }),
        Var::Method => e(col("method")),
        Var::Url => e(col("url")),
        Var::Path => e(col("path")),
        Var::HttpVersion => e(col("http_version")),
        Var::StatusCode => e(col("status_code")),
        Var::QueryString => Ok(Rendered::Map(
            col("query_string_keys"),
            col("query_string_values"),
        )),
        Var::RequestHeaders => Ok(Rendered::Map(
            col("request_headers_keys"),
            col("request_headers_values"),
        )),
        Var::ResponseHeaders => Ok(Rendered::Map(
            col("response_headers_keys"),
            col("response_headers_values"),
        )),
        Var::RequestHeadersSize => e("toInt64(`request_headers_size`)".into()),
        Var::RequestBodySize => e("toInt64(`request_body_size`)".into()),
        Var::ResponseHeadersSize => e("toInt64(`response_headers_size`)".into()),
        Var::ResponseBodySize => e("toInt64(`response_body_size`)".into()),
        Var::GrpcStatus => e("if(`protocol` = 'grpc', `status_code`, toInt64(-1))".into()),
        Var::GrpcMethod => e(only(
            "`protocol` = 'grpc'",
            "splitByChar('/', `path`)[-1]",
            "''",
        )),
        Var::DnsQuestions => e(col("dns_questions")),
        Var::DnsAnswers => e(col("dns_answers")),
        Var::DnsQuestionTypes => e(col("dns_question_types")),
        Var::DnsRequest => e("(`detail` = 'dns')".into()),
        Var::DnsResponse => e("(`detail` = 'dns' AND `has_response` != 0)".into()),
        Var::DnsRequestLength => e("toInt64(`dns_request_length`)".into()),
        Var::DnsResponseLength => e("toInt64(`dns_response_length`)".into()),
        Var::DnsTotalSize => e("toInt64(`dns_request_length` + `dns_response_length`)".into()),
        Var::TlsSummary => e(only(
            "`detail` = 'tls'",
            "if(`tls_sni` = '', `tls_client_version`, concat(`tls_client_version`, ' ', `tls_sni`))",
            "''",
        )),
        Var::TlsInfo => e(col("tls_server_version")),
        Var::TlsSni => e(col("tls_sni")),
        Var::TlsAlpn => e(col("tls_alpn")),
        Var::TlsRequestSize => e(only(
            "`detail` = 'tls'",
            "toInt64(`request_size`)",
            "toInt64(0)",
        )),
        Var::TlsResponseSize => e(only(
            "`detail` = 'tls'",
            "toInt64(`response_size`)",
            "toInt64(0)",
        )),
        Var::TlsTotalSize => e(only(
            "`detail` = 'tls'",
            "toInt64(`request_size` + `response_size`)",
            "toInt64(0)",
        )),
        Var::TcpErrorType => e(only(
            "`detail` = 'conn' AND `protocol` = 'tcp'",
            "`conn_error_type`",
            "''",
        )),
        Var::ConnState(udp) => {
            let p = if udp { "udp" } else { "tcp" };
            e(only(
                &format!("`detail` = 'conn' AND `protocol` = '{p}'"),
                "`conn_state`",
                "''",
            ))
        }
        Var::ConnCounter { udp, remote, bytes } => {
            let p = if udp { "udp" } else { "tcp" };
            let c = match (remote, bytes) {
                (false, false) => "conn_client_packets",
                (true, false) => "conn_server_packets",
                (false, true) => "request_size",
                (true, true) => "response_size",
            };
            e(only(
                &format!("`detail` = 'conn' AND `protocol` = '{p}'"),
                &format!("toInt64(`{c}`)"),
                "toInt64(0)",
            ))
        }
        Var::Namespaces => e(up2("namespace")),
        Var::Pods => e(up2("pod")),
        Var::Services => e(up2("service")),
        Var::DnsResolutions => e(up2("dns")),
        Var::App(k) => e(app_lookup(k, t)?),
        Var::Default if matches!(t, Type::Null | Type::Dyn) => {
            Err(SqlError(format!("`{name}` has no SQL default")))
        }
        Var::Default => default_sql(t),
    }
}

/// Both sides' field, the empty ones left out.
fn up2(field: &str) -> String {
    format!("arrayFilter(wm_u -> wm_u != '', [`src_{field}`, `dst_{field}`])")
}

/// What a node is known to be, where it matters for choosing SQL (strings add by
/// concatenation, `size()` counts characters of a string but items of a list).
fn static_type(n: &Node, locals: &Locals) -> Option<Type> {
    guarded(|| static_type_here(n, locals))
}

fn static_type_here(n: &Node, locals: &Locals) -> Option<Type> {
    match n {
        Node::Local(i) => locals.get(*i).and_then(|(_, t)| t.clone()),
        Node::Var(_, t, _) => Some(t.clone()),
        Node::Const(Const::Str(_)) => Some(Type::Str),
        Node::Const(Const::Bytes(_)) => Some(Type::Bytes),
        Node::Const(Const::Int(_)) => Some(Type::Int),
        Node::Const(Const::Uint(_)) => Some(Type::Uint),
        Node::Const(Const::Double(_)) => Some(Type::Double),
        Node::Convert(Conv::Str | Conv::Lower | Conv::Upper, _) => Some(Type::Str),
        Node::Convert(Conv::Int, _) => Some(Type::Int),
        Node::List(items) => Some(Type::List(Box::new(
            items
                .first()
                .and_then(|i| static_type(i, locals))
                .unwrap_or(Type::Dyn),
        ))),
        Node::Comp {
            kind: Comp::Filter,
            range,
            ..
        } if is_map(range) => Some(Type::list_str()),
        Node::Comp {
            kind: Comp::Filter,
            range,
            ..
        } => static_type(range, locals),
        Node::Comp {
            kind: Comp::Map, ..
        } => Some(Type::List(Box::new(Type::Dyn))),
        Node::Arith(Op::Add, a, _) => static_type(a, locals),
        _ => None,
    }
}

/// Renders `n`; `locals` names the comprehension variables in scope.
pub(crate) fn render(n: &Node, locals: &mut Locals) -> Result<String, SqlError> {
    match guarded(|| render_any(n, locals))? {
        Rendered::Expr(s) => Ok(s),
        Rendered::Map(..) => unsupported("a map used as a value"),
    }
}

/// Renders a node that must be a string map.
fn render_map(n: &Node, locals: &mut Locals) -> Result<(String, String), SqlError> {
    match guarded(|| render_any(n, locals))? {
        Rendered::Map(k, v) => Ok((k, v)),
        Rendered::Expr(_) => unsupported("a map operation on a value that is not a string map"),
    }
}

fn is_map(n: &Node) -> bool {
    matches!(n, Node::Var(_, Type::Map(..), _) | Node::Map(_))
}

fn render_any(n: &Node, locals: &mut Locals) -> Result<Rendered, SqlError> {
    let r = |x: &Node, l: &mut Locals| render(x, l);
    Ok(Rendered::Expr(match n {
        Node::Const(c) => konst(c),
        Node::Var(v, t, name) => return guarded(|| var_sql(*v, t, name)),
        Node::Local(i) => locals
            .get(*i)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| SqlError("unbound variable".into()))?,
        Node::Not(a) => format!("(NOT {})", r(a, locals)?),
        Node::Neg(a) => format!("(-{})", r(a, locals)?),
        Node::And(a, b) => format!("({} AND {})", r(a, locals)?, r(b, locals)?),
        Node::Or(a, b) => format!("({} OR {})", r(a, locals)?, r(b, locals)?),
        Node::Cond(c, a, b) => format!(
            "if({}, {}, {})",
            r(c, locals)?,
            r(a, locals)?,
            r(b, locals)?
        ),
        Node::Cmp(op, a, b) => return guarded(|| cmp(*op, a, b, locals)),
        Node::Arith(op, a, b) => {
            let (x, y) = (r(a, locals)?, r(b, locals)?);
            let t = static_type(a, locals).or_else(|| static_type(b, locals));
            match op {
                Op::Add if matches!(t, Some(Type::Str | Type::Bytes)) => {
                    format!("concat({x}, {y})")
                }
                Op::Add if matches!(t, Some(Type::List(_))) => format!("arrayConcat({x}, {y})"),
                Op::Add => format!("({x} + {y})"),
                Op::Sub => format!("({x} - {y})"),
                Op::Mul => format!("({x} * {y})"),
                // CEL reports a division by zero; only a non-zero constant is safe.
                Op::Div => match b.as_ref() {
                    Node::Const(Const::Int(d)) if *d != 0 => format!("intDiv({x}, {y})"),
                    Node::Const(Const::Uint(d)) if *d != 0 => format!("intDiv({x}, {y})"),
                    Node::Const(Const::Double(_)) => format!("({x} / {y})"),
                    _ => return unsupported("division by a value that may be zero"),
                },
                _ => match b.as_ref() {
                    Node::Const(Const::Int(d)) if *d != 0 => format!("({x} % {y})"),
                    Node::Const(Const::Uint(d)) if *d != 0 => format!("({x} % {y})"),
                    _ => return unsupported("remainder by a value that may be zero"),
                },
            }
        }
        Node::In(a, b) => {
            let x = r(a, locals)?;
            match b.as_ref() {
                Node::List(items) if items.iter().all(|i| matches!(i, Node::Const(_))) => {
                    let v: Result<Vec<String>, SqlError> =
                        items.iter().map(|i| r(i, locals)).collect();
                    let v = v?;
                    if v.is_empty() {
                        "0".into()
                    } else {
                        format!("({x} IN ({}))", v.join(", "))
                    }
                }
                m if is_map(m) => {
                    let (k, _) = render_map(m, locals)?;
                    format!("has({k}, {x})")
                }
                other => format!("has({}, {x})", r(other, locals)?),
            }
        }
        Node::InSet(a, set) => {
            let mut v: Vec<&String> = set.iter().collect();
            v.sort();
            let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
            if items.is_empty() {
                "0".into()
            } else {
                format!("({} IN ({}))", r(a, locals)?, items.join(", "))
            }
        }
        // `node` always holds both its keys: indexing it cannot fail, so it has an exact form.
        Node::Index(m, k) if matches!(**m, Node::Var(Var::NodeMap, ..)) => match &**k {
            Node::Const(Const::Str(k)) if k == "name" => col("node_name"),
            Node::Const(Const::Str(k)) if k == "ip" => "''".into(),
            _ => return unsupported("indexing `node` with anything but \"name\" or \"ip\""),
        },
        Node::Index(..) => {
            return unsupported("indexing with [] (use map_get(m, k, default) or `k in m`)")
        }
        Node::List(items) => {
            let v: Result<Vec<String>, SqlError> = items.iter().map(|i| r(i, locals)).collect();
            format!("[{}]", v?.join(", "))
        }
        Node::Map(items) => {
            let mut ks = Vec::new();
            let mut vs = Vec::new();
            for (k, x) in items {
                ks.push(r(k, locals)?);
                vs.push(r(x, locals)?);
            }
            return Ok(Rendered::Map(
                format!("[{}]", ks.join(", ")),
                format!("[{}]", vs.join(", ")),
            ));
        }
        Node::Str(f, a, b) => {
            let (x, y) = (r(a, locals)?, r(b, locals)?);
            match f {
                StrFn::Contains => format!("(position({x}, {y}) > 0)"),
                StrFn::StartsWith => format!("startsWith({x}, {y})"),
                StrFn::EndsWith => format!("endsWith({x}, {y})"),
            }
        }
        Node::Matches(a, re) => format!("match({}, {})", r(a, locals)?, quote(re.as_str())),
        Node::MatchesDyn(a, p, _) => format!("match({}, {})", r(a, locals)?, r(p, locals)?),
        Node::Size(a) => {
            if is_map(a) {
                format!("toInt64(length({}))", render_map(a, locals)?.0)
            } else {
                let x = r(a, locals)?;
                match static_type(a, locals) {
                    Some(Type::Str) => format!("toInt64(lengthUTF8({x}))"),
                    Some(Type::List(_) | Type::Bytes) => format!("toInt64(length({x}))"),
                    _ => return unsupported("size() of a value of unknown type"),
                }
            }
        }
        Node::MapGet(m, k, d) => {
            let (keys, vals) = render_map(m, locals)?;
            let (k, d) = (r(k, locals)?, r(d, locals)?);
            format!("if(has({keys}, {k}), {vals}[indexOf({keys}, {k})], {d})")
        }
        Node::HasVar(a) => {
            if is_map(a) {
                format!("notEmpty({})", render_map(a, locals)?.0)
            } else {
                let x = r(a, locals)?;
                match static_type(a, locals) {
                    Some(Type::Str | Type::Bytes) => format!("({x} != '')"),
                    Some(Type::Int | Type::Uint | Type::Double | Type::Timestamp) => {
                        format!("({x} != 0)")
                    }
                    Some(Type::Bool) => format!("({x} != 0)"),
                    Some(Type::List(_)) => format!("notEmpty({x})"),
                    _ => return unsupported("has() of a value of unknown type"),
                }
            }
        }
        Node::HasKey(m, k) => format!("has({}, {})", render_map(m, locals)?.0, quote(k)),
        Node::Convert(c, a) => {
            let x = r(a, locals)?;
            match c {
                Conv::Int => format!("toInt64({x})"),
                Conv::Uint => format!("toUInt64({x})"),
                Conv::Double => format!("toFloat64({x})"),
                Conv::Str => format!("toString({x})"),
                Conv::Bytes | Conv::Dyn => x,
                Conv::Lower => format!("lowerUTF8({x})"),
                Conv::Upper => format!("upperUTF8({x})"),
                Conv::Bool => return unsupported("bool() of a non-constant"),
                Conv::Timestamp => return unsupported("timestamp() of a non-constant"),
                Conv::Duration => return unsupported("duration() of a non-constant"),
            }
        }
        Node::Comp {
            kind,
            range,
            slot,
            body,
        } => {
            // A comprehension over a map ranges over its keys (strings).
            let (list, item) = if is_map(range) {
                (render_map(range, locals)?.0, Some(Type::Str))
            } else {
                let item = match static_type(range, locals) {
                    Some(Type::List(t)) => Some(*t),
                    _ => None,
                };
                (r(range, locals)?, item)
            };
            let var = format!("x{slot}");
            locals.truncate(*slot);
            locals.push((var.clone(), item));
            let b = r(body, locals)?;
            locals.truncate(*slot);
            match kind {
                Comp::All => format!("arrayAll({var} -> {b}, {list})"),
                Comp::Exists => format!("arrayExists({var} -> {b}, {list})"),
                Comp::ExistsOne => format!("(arrayCount({var} -> {b}, {list}) = 1)"),
                Comp::Filter => format!("arrayFilter({var} -> {b}, {list})"),
                Comp::Map => format!("arrayMap({var} -> {b}, {list})"),
            }
        }
    }))
}

fn is_ip_var(n: &Node) -> bool {
    matches!(n, Node::Var(Var::Side(_, IdField::Ip), _, _))
}

fn cmp(op: Op, a: &Node, b: &Node, locals: &mut Locals) -> Result<Rendered, SqlError> {
    if is_map(a) || is_map(b) {
        return unsupported("comparing whole maps");
    }
    let o = match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        _ => ">=",
    };
    // An address equals a text that parses to the same address ("::FFFF:a00:1" is
    // "::ffff:10.0.0.1"), and never one that does not parse.
    if matches!(op, Op::Eq | Op::Ne) {
        let pair = match (a, b) {
            (v, Node::Const(Const::Str(s))) | (Node::Const(Const::Str(s)), v) if is_ip_var(v) => {
                Some((v, s))
            }
            _ => None,
        };
        if let Some((v, s)) = pair {
            let x = render(v, locals)?;
            return Ok(Rendered::Expr(match s.parse::<IpAddr>() {
                Ok(ip) => format!("({x} {o} {})", quote(&ip.to_string())),
                Err(_) if op == Op::Eq => "0".into(),
                Err(_) => "1".into(),
            }));
        }
    }
    Ok(Rendered::Expr(format!(
        "({} {o} {})",
        render(a, locals)?,
        render(b, locals)?
    )))
}
