//! The variables of an entry (Kubeshark KFL2 names), their types, and how each is read.

use wiremap_model::{AppVal, Detail, Endpoint, Entry, Protocol};

use crate::value::{ListV, MapV, Val};

/// Static types of the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// bool
    Bool,
    /// int
    Int,
    /// uint
    Uint,
    /// double
    Double,
    /// string
    Str,
    /// bytes
    Bytes,
    /// timestamp
    Timestamp,
    /// duration
    Duration,
    /// null_type
    Null,
    /// list(T)
    List(Box<Type>),
    /// map(K, V)
    Map(Box<Type>, Box<Type>),
    /// Anything (checked when evaluated).
    Dyn,
}

impl Type {
    /// CEL's name of the type.
    pub fn name(&self) -> String {
        match self {
            Type::Bool => "bool".into(),
            Type::Int => "int".into(),
            Type::Uint => "uint".into(),
            Type::Double => "double".into(),
            Type::Str => "string".into(),
            Type::Bytes => "bytes".into(),
            Type::Timestamp => "timestamp".into(),
            Type::Duration => "duration".into(),
            Type::Null => "null".into(),
            Type::List(t) => format!("list({})", t.name()),
            Type::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Type::Dyn => "dyn".into(),
        }
    }

    pub(crate) fn list_str() -> Type {
        Type::List(Box::new(Type::Str))
    }

    pub(crate) fn map_str() -> Type {
        Type::Map(Box::new(Type::Str), Box::new(Type::Str))
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Uint | Type::Double)
    }
}

/// Which side of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client.
    Src,
    /// The server.
    Dst,
}

/// An identity field of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    /// Address.
    Ip,
    /// Port.
    Port,
    /// Best name.
    Name,
    /// Namespace.
    Namespace,
    /// Pod name (service name when only a service is known).
    PodName,
    /// Pod namespace.
    PodNamespace,
    /// Service name.
    ServiceName,
    /// Service namespace.
    ServiceNamespace,
    /// Workload kind.
    WorkloadKind,
    /// Workload name.
    WorkloadName,
    /// Labels.
    Labels,
    /// Zone.
    Zone,
    /// DNS name.
    Dns,
    /// Cluster node.
    Node,
    /// Resolution status.
    Status,
}

/// A variable the evaluator knows how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// A side's identity field.
    Side(Side, IdField),
    /// `protocol`
    Protocol,
    /// `id`
    Id,
    /// `index`
    Index,
    /// `stream`
    Stream,
    /// `conn_id`, `flow_id`
    StreamId,
    /// `timestamp`
    Timestamp,
    /// `elapsed_time`
    ElapsedTime,
    /// `node_name`
    NodeName,
    /// `node`
    NodeMap,
    /// A protocol flag.
    Flag(Flag),
    /// `method`
    Method,
    /// `url`
    Url,
    /// `path`
    Path,
    /// `http_version`
    HttpVersion,
    /// `status_code`
    StatusCode,
    /// `query_string`
    QueryString,
    /// `request.headers`
    RequestHeaders,
    /// `response.headers`
    ResponseHeaders,
    /// `request_headers_size`
    RequestHeadersSize,
    /// `request_body_size`
    RequestBodySize,
    /// `response_headers_size`
    ResponseHeadersSize,
    /// `response_body_size`
    ResponseBodySize,
    /// `grpc_status` (-1 off gRPC)
    GrpcStatus,
    /// `grpc_method`: the last segment of a gRPC call's path.
    GrpcMethod,
    /// `dns_questions`
    DnsQuestions,
    /// `dns_answers`
    DnsAnswers,
    /// `dns_question_types`
    DnsQuestionTypes,
    /// `dns_request`
    DnsRequest,
    /// `dns_response`
    DnsResponse,
    /// `dns_request_length`
    DnsRequestLength,
    /// `dns_response_length`
    DnsResponseLength,
    /// `dns_total_size`
    DnsTotalSize,
    /// `tls_summary`
    TlsSummary,
    /// `tls_info`
    TlsInfo,
    /// `tls_sni`
    TlsSni,
    /// `tls_alpn`
    TlsAlpn,
    /// `tls_request_size`
    TlsRequestSize,
    /// `tls_response_size`
    TlsResponseSize,
    /// `tls_total_size`
    TlsTotalSize,
    /// `tcp_error_type`
    TcpErrorType,
    /// `conn_state` / `flow_state`
    ConnState(bool),
    /// `conn_local_pkts` … (udp, remote, bytes)
    ConnCounter {
        udp: bool,
        remote: bool,
        bytes: bool,
    },
    /// `namespaces`
    Namespaces,
    /// `pods`
    Pods,
    /// `services`
    Services,
    /// `dns_resolutions`
    DnsResolutions,
    /// A field of an application entry (`redis_command`, `kafka_api_key`, …).
    App(&'static str),
    /// A variable wiremap does not fill yet: always its type's default.
    Default,
}

/// Protocol flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Exactly this protocol.
    Is(Protocol),
    /// `http`: HTTP, gRPC or GraphQL.
    Http,
    /// `conn`/`flow`: an L4 connection entry (tcp or udp).
    Conn,
}

/// Every variable: name, type, accessor.
pub(crate) fn variables() -> Vec<(&'static str, Type, Var)> {
    use IdField as F;
    use Side::{Dst, Src};
    use Type as T;
    use Var as V;
    let mut v: Vec<(&'static str, Type, Var)> = vec![
        ("src.ip", T::Str, V::Side(Src, F::Ip)),
        ("dst.ip", T::Str, V::Side(Dst, F::Ip)),
        ("src.port", T::Int, V::Side(Src, F::Port)),
        ("dst.port", T::Int, V::Side(Dst, F::Port)),
        ("protocol", T::Str, V::Protocol),
        ("id", T::Int, V::Id),
        ("index", T::Int, V::Index),
        ("stream", T::Str, V::Stream),
        ("timestamp", T::Timestamp, V::Timestamp),
        ("elapsed_time", T::Int, V::ElapsedTime),
        ("node_id", T::Str, V::Default),
        ("worker", T::Str, V::Default),
        ("conn_id", T::Int, V::StreamId),
        ("flow_id", T::Int, V::StreamId),
        ("has_pcap", T::Bool, V::Default),
        ("capture_source", T::Str, V::Default),
        ("capture_backend", T::Str, V::Default),
        ("http", T::Bool, V::Flag(Flag::Http)),
        ("grpc", T::Bool, V::Flag(Flag::Is(Protocol::Grpc))),
        ("gql", T::Bool, V::Flag(Flag::Is(Protocol::Gql))),
        ("ws", T::Bool, V::Flag(Flag::Is(Protocol::Ws))),
        ("dns", T::Bool, V::Flag(Flag::Is(Protocol::Dns))),
        ("tls", T::Bool, V::Flag(Flag::Is(Protocol::Tls))),
        ("tcp", T::Bool, V::Flag(Flag::Is(Protocol::Tcp))),
        ("udp", T::Bool, V::Flag(Flag::Is(Protocol::Udp))),
        ("redis", T::Bool, V::Flag(Flag::Is(Protocol::Redis))),
        ("kafka", T::Bool, V::Flag(Flag::Is(Protocol::Kafka))),
        ("amqp", T::Bool, V::Flag(Flag::Is(Protocol::Amqp))),
        ("mongodb", T::Bool, V::Flag(Flag::Is(Protocol::Mongodb))),
        ("mysql", T::Bool, V::Flag(Flag::Is(Protocol::Mysql))),
        (
            "postgresql",
            T::Bool,
            V::Flag(Flag::Is(Protocol::Postgresql)),
        ),
        ("conn", T::Bool, V::Flag(Flag::Conn)),
        ("flow", T::Bool, V::Flag(Flag::Conn)),
        ("tcp_conn", T::Bool, V::Flag(Flag::Is(Protocol::Tcp))),
        ("tcp_flow", T::Bool, V::Flag(Flag::Is(Protocol::Tcp))),
        ("udp_conn", T::Bool, V::Flag(Flag::Is(Protocol::Udp))),
        ("udp_flow", T::Bool, V::Flag(Flag::Is(Protocol::Udp))),
        ("method", T::Str, V::Method),
        ("url", T::Str, V::Url),
        ("path", T::Str, V::Path),
        ("http_version", T::Str, V::HttpVersion),
        ("status_code", T::Int, V::StatusCode),
        ("query_string", T::map_str(), V::QueryString),
        ("request.headers", T::map_str(), V::RequestHeaders),
        ("response.headers", T::map_str(), V::ResponseHeaders),
        ("request.cookies", T::map_str(), V::Default),
        ("response.cookies", T::map_str(), V::Default),
        ("request_headers_size", T::Int, V::RequestHeadersSize),
        ("request_body_size", T::Int, V::RequestBodySize),
        ("response_headers_size", T::Int, V::ResponseHeadersSize),
        ("response_body_size", T::Int, V::ResponseBodySize),
        ("grpc_method", T::Str, V::GrpcMethod),
        ("grpc_status", T::Int, V::GrpcStatus),
        ("ws_opcode", T::Str, V::Default),
        ("ws_request_payload_data", T::Str, V::Default),
        ("ws_request", T::Bool, V::Default),
        ("ws_response", T::Bool, V::Default),
        ("ws_request_payload_length", T::Int, V::Default),
        ("ws_response_payload_length", T::Int, V::Default),
        ("dns_questions", T::list_str(), V::DnsQuestions),
        ("dns_answers", T::list_str(), V::DnsAnswers),
        ("dns_question_types", T::list_str(), V::DnsQuestionTypes),
        ("dns_request", T::Bool, V::DnsRequest),
        ("dns_response", T::Bool, V::DnsResponse),
        ("dns_request_length", T::Int, V::DnsRequestLength),
        ("dns_response_length", T::Int, V::DnsResponseLength),
        ("dns_total_size", T::Int, V::DnsTotalSize),
        ("tls_summary", T::Str, V::TlsSummary),
        ("tls_info", T::Str, V::TlsInfo),
        ("tls_sni", T::Str, V::TlsSni),
        ("tls_alpn", T::list_str(), V::TlsAlpn),
        ("tls_request_size", T::Int, V::TlsRequestSize),
        ("tls_response_size", T::Int, V::TlsResponseSize),
        ("tls_total_size", T::Int, V::TlsTotalSize),
        ("tcp_method", T::Str, V::Default),
        ("tcp_error_type", T::Str, V::TcpErrorType),
        ("tcp_error_message", T::Str, V::Default),
        ("tcp_payload", T::Bytes, V::Default),
        ("udp_length", T::Int, V::Default),
        ("udp_checksum", T::Int, V::Default),
        ("udp_payload", T::Bytes, V::Default),
        ("sctp_checksum", T::Int, V::Default),
        ("sctp_length", T::Int, V::Default),
        ("sctp_chunk_type", T::Str, V::Default),
        ("icmp_type", T::Str, V::Default),
        ("icmp_version", T::Int, V::Default),
        ("icmp_length", T::Int, V::Default),
        ("conn_state", T::Str, V::ConnState(false)),
        ("flow_state", T::Str, V::ConnState(true)),
        ("conn_l7_detected", T::list_str(), V::Default),
        ("flow_l7_detected", T::list_str(), V::Default),
        ("namespaces", T::list_str(), V::Namespaces),
        ("pods", T::list_str(), V::Pods),
        ("services", T::list_str(), V::Services),
        ("local_labels", T::map_str(), V::Side(Src, F::Labels)),
        ("remote_labels", T::map_str(), V::Side(Dst, F::Labels)),
        ("local_annotations", T::map_str(), V::Default),
        ("remote_annotations", T::map_str(), V::Default),
        ("node", T::map_str(), V::NodeMap),
        ("node_name", T::Str, V::NodeName),
        ("node_ip", T::Str, V::Default),
        ("local_node_name", T::Str, V::Side(Src, F::Node)),
        ("remote_node_name", T::Str, V::Side(Dst, F::Node)),
        ("local_process_name", T::Str, V::Default),
        ("remote_process_name", T::Str, V::Default),
        ("dns_resolutions", T::list_str(), V::DnsResolutions),
        ("local_resolution_status", T::Str, V::Side(Src, F::Status)),
        ("remote_resolution_status", T::Str, V::Side(Dst, F::Status)),
    ];
    for (side, p) in [(Src, "src"), (Dst, "dst")] {
        let fields: [(&str, Type, IdField); 13] = [
            ("name", T::Str, F::Name),
            ("namespace", T::Str, F::Namespace),
            ("pod.name", T::Str, F::PodName),
            ("pod.namespace", T::Str, F::PodNamespace),
            ("service.name", T::Str, F::ServiceName),
            ("service.namespace", T::Str, F::ServiceNamespace),
            ("workload.kind", T::Str, F::WorkloadKind),
            ("workload.name", T::Str, F::WorkloadName),
            ("labels", T::map_str(), F::Labels),
            ("zone", T::Str, F::Zone),
            ("dns", T::Str, F::Dns),
            ("node", T::Str, F::Node),
            ("resolution_status", T::Str, F::Status),
        ];
        for (f, t, id) in fields {
            let name: &'static str = Box::leak(format!("{p}.{f}").into_boxed_str());
            v.push((name, t, V::Side(side, id)));
        }
    }
    // Counters of L4 entries: conn_* for TCP, flow_* for UDP ("local" is the client).
    for (udp, pre) in [(false, "conn"), (true, "flow")] {
        for (remote, side) in [(false, "local"), (true, "remote")] {
            for (bytes, what) in [(false, "pkts"), (true, "bytes")] {
                let name: &'static str = Box::leak(format!("{pre}_{side}_{what}").into_boxed_str());
                v.push((name, T::Int, V::ConnCounter { udp, remote, bytes }));
            }
        }
    }
    for name in [
        "flow_local_pps",
        "flow_local_bps",
        "flow_remote_pps",
        "flow_remote_bps",
    ] {
        v.push((name, T::Int, V::Default));
    }
    for (name, t) in [
        ("redis_type", T::Str),
        ("redis_command", T::Str),
        ("redis_key", T::Str),
        ("redis_request_size", T::Int),
        ("redis_response_size", T::Int),
        ("redis_total_size", T::Int),
        ("kafka_api_key", T::Int),
        ("kafka_size", T::Int),
        ("kafka_request_size", T::Int),
        ("kafka_response_size", T::Int),
        ("kafka_api_key_name", T::Str),
        ("kafka_client_id", T::Str),
        ("kafka_request_summary", T::Str),
        ("kafka_request", T::Bool),
        ("kafka_response", T::Bool),
        ("amqp_method", T::Str),
        ("amqp_summary", T::Str),
        ("amqp_request", T::Bool),
        ("amqp_response", T::Bool),
        ("amqp_request_length", T::Int),
        ("amqp_response_length", T::Int),
        ("amqp_total_size", T::Int),
        ("mongodb_command", T::Str),
        ("mongodb_database", T::Str),
        ("mongodb_collection", T::Str),
        ("mongodb_opcode", T::Str),
        ("mongodb_error_message", T::Str),
        ("mongodb_error_code_name", T::Str),
        ("mongodb_request_size", T::Int),
        ("mongodb_response_size", T::Int),
        ("mongodb_total_size", T::Int),
        ("mongodb_error_code", T::Int),
        ("mongodb_success", T::Bool),
        ("mysql_command", T::Str),
        ("mysql_query", T::Str),
        ("mysql_database", T::Str),
        ("mysql_error_message", T::Str),
        ("mysql_statement_id", T::Int),
        ("mysql_request_size", T::Int),
        ("mysql_response_size", T::Int),
        ("mysql_total_size", T::Int),
        ("mysql_error_code", T::Int),
        ("mysql_success", T::Bool),
        ("postgresql_command", T::Str),
        ("postgresql_query", T::Str),
        ("postgresql_database", T::Str),
        ("postgresql_user", T::Str),
        ("postgresql_error_code", T::Str),
        ("postgresql_error_message", T::Str),
        ("postgresql_request_size", T::Int),
        ("postgresql_response_size", T::Int),
        ("postgresql_total_size", T::Int),
        ("postgresql_success", T::Bool),
        ("gqlv1", T::Bool),
        ("gqlv2", T::Bool),
        ("sctp", T::Bool),
        ("icmp", T::Bool),
        ("ldap", T::Bool),
        ("radius", T::Bool),
        ("diameter", T::Bool),
        ("ldap_type", T::Str),
        ("ldap_summary", T::Str),
        ("ldap_request", T::Bool),
        ("ldap_response", T::Bool),
        ("ldap_request_length", T::Int),
        ("ldap_response_length", T::Int),
        ("ldap_total_size", T::Int),
        ("radius_code", T::Int),
        ("radius_code_name", T::Str),
        ("radius_request", T::Bool),
        ("radius_response", T::Bool),
        ("radius_request_length", T::Int),
        ("radius_response_length", T::Int),
        ("radius_total_size", T::Int),
        ("diameter_method", T::Str),
        ("diameter_summary", T::Str),
        ("diameter_request", T::Bool),
        ("diameter_response", T::Bool),
        ("diameter_request_length", T::Int),
        ("diameter_response_length", T::Int),
        ("diameter_total_size", T::Int),
    ] {
        v.push((name, t, V::App(name)));
    }
    v
}

/// The default value of a type (absent variables take it).
pub(crate) fn default_of(t: &Type) -> Val<'static> {
    match t {
        Type::Bool => Val::Bool(false),
        Type::Int => Val::Int(0),
        Type::Uint => Val::Uint(0),
        Type::Double => Val::Double(0.0),
        Type::Str => Val::Str(""),
        Type::Bytes => Val::Bytes(&[]),
        Type::Timestamp => Val::Timestamp(0),
        Type::Duration => Val::Duration(0),
        Type::List(_) => Val::List(ListV::Strs(&[])),
        Type::Map(..) => Val::Map(MapV::Empty),
        Type::Null | Type::Dyn => Val::Null,
    }
}

fn side(e: &Entry, s: Side) -> &Endpoint {
    match s {
        Side::Src => &e.src,
        Side::Dst => &e.dst,
    }
}

fn pair<'a>(a: &'a str, b: &'a str) -> Val<'a> {
    Val::List(ListV::Up2(
        [a, b],
        usize::from(!a.is_empty()) + usize::from(!b.is_empty()),
    ))
}

/// Reads variable `v` (of type `t`) from an entry.
pub(crate) fn read<'a>(v: Var, t: &Type, e: &'a Entry) -> Val<'a> {
    // Only the detail a variable needs is looked at.
    let http = || match &e.detail {
        Detail::Http(h) => Some(h.as_ref()),
        _ => None,
    };
    let dns = || match &e.detail {
        Detail::Dns(d) => Some(d.as_ref()),
        _ => None,
    };
    let tls = || match &e.detail {
        Detail::Tls(t) => Some(t.as_ref()),
        _ => None,
    };
    let conn = || match &e.detail {
        Detail::Conn(c) => Some(c.as_ref()),
        _ => None,
    };
    let int = |x: u64| Val::Int(i64::try_from(x).unwrap_or(i64::MAX));
    match v {
        Var::Side(s, f) => {
            let ep = side(e, s);
            let id = ep.identity();
            match f {
                IdField::Ip => Val::IpStr(ep.ip),
                IdField::Port => Val::Int(i64::from(ep.port)),
                IdField::Name => Val::Str(&id.name),
                IdField::Namespace => Val::Str(&id.namespace),
                IdField::PodName => Val::Str(if id.pod.is_empty() {
                    &id.service
                } else {
                    &id.pod
                }),
                IdField::PodNamespace => Val::Str(if id.pod.is_empty() && id.service.is_empty() {
                    ""
                } else {
                    &id.namespace
                }),
                IdField::ServiceName => Val::Str(&id.service),
                IdField::ServiceNamespace => Val::Str(if id.service.is_empty() {
                    ""
                } else {
                    &id.namespace
                }),
                IdField::WorkloadKind => Val::Str(&id.workload_kind),
                IdField::WorkloadName => Val::Str(&id.workload_name),
                IdField::Labels => Val::Map(MapV::Labels(&id.labels)),
                IdField::Zone => Val::Str(&id.zone),
                IdField::Dns => Val::Str(&id.dns),
                IdField::Node => Val::Str(&id.node),
                IdField::Status => Val::Str(id.resolution_status),
            }
        }
        Var::Protocol => Val::Str(e.protocol.as_str()),
        Var::Id => int(e.id),
        Var::Index => Val::Int(i64::from(e.index)),
        Var::Stream => Val::Owned(e.stream.to_string()),
        Var::StreamId => int(e.stream),
        Var::Timestamp => Val::Timestamp(e.timestamp.nanos()),
        Var::ElapsedTime => Val::Int(e.elapsed_time),
        Var::NodeName => Val::Str(&e.node_name),
        Var::NodeMap => Val::Map(MapV::Node(&e.node_name)),
        Var::Flag(f) => Val::Bool(match f {
            Flag::Is(p) => e.protocol == p,
            Flag::Http => matches!(e.protocol, Protocol::Http | Protocol::Grpc | Protocol::Gql),
            Flag::Conn => matches!(e.protocol, Protocol::Tcp | Protocol::Udp),
        }),
        Var::Method => Val::Str(http().map_or("", |h| &h.method)),
        Var::Url => Val::Str(http().map_or("", |h| &h.url)),
        Var::Path => Val::Str(http().map_or("", |h| &h.path)),
        Var::HttpVersion => Val::Str(http().map_or("", |h| &h.http_version)),
        Var::StatusCode => Val::Int(e.status_code),
        Var::QueryString => match http().and_then(|h| h.url.split_once('?')) {
            Some((_, q)) => Val::Map(MapV::Query(q)),
            None => Val::Map(MapV::Empty),
        },
        Var::RequestHeaders => http().map_or(Val::Map(MapV::Empty), |h| {
            Val::Map(MapV::Pairs(&h.request_headers))
        }),
        Var::ResponseHeaders => http().map_or(Val::Map(MapV::Empty), |h| {
            Val::Map(MapV::Pairs(&h.response_headers))
        }),
        Var::RequestHeadersSize => int(http().map_or(0, |h| h.request_headers_size)),
        Var::RequestBodySize => int(http().map_or(0, |h| h.request_body_size)),
        Var::ResponseHeadersSize => int(http().map_or(0, |h| h.response_headers_size)),
        Var::ResponseBodySize => int(http().map_or(0, |h| h.response_body_size)),
        Var::GrpcStatus => Val::Int(if e.protocol == Protocol::Grpc {
            e.status_code
        } else {
            -1
        }),
        Var::GrpcMethod => Val::Str(match http() {
            Some(h) if e.protocol == Protocol::Grpc => h.path.rsplit('/').next().unwrap_or(""),
            _ => "",
        }),
        Var::DnsQuestions => Val::List(ListV::Strs(dns().map_or(&[][..], |d| &d.questions))),
        Var::DnsAnswers => Val::List(ListV::Strs(dns().map_or(&[][..], |d| &d.answers))),
        Var::DnsQuestionTypes => {
            Val::List(ListV::Strs(dns().map_or(&[][..], |d| &d.question_types)))
        }
        Var::DnsRequest => Val::Bool(dns().is_some()),
        Var::DnsResponse => Val::Bool(dns().is_some() && e.has_response),
        Var::DnsRequestLength => int(dns().map_or(0, |d| d.request_length)),
        Var::DnsResponseLength => int(dns().map_or(0, |d| d.response_length)),
        Var::DnsTotalSize => int(dns().map_or(0, |d| d.request_length + d.response_length)),
        Var::TlsSummary => match tls() {
            Some(t) if t.sni.is_empty() => Val::Str(&t.client_version),
            Some(t) => Val::Owned(format!("{} {}", t.client_version, t.sni)),
            None => Val::Str(""),
        },
        Var::TlsInfo => Val::Str(tls().map_or("", |t| &t.server_version)),
        Var::TlsSni => Val::Str(tls().map_or("", |t| &t.sni)),
        Var::TlsAlpn => Val::List(ListV::Strs(tls().map_or(&[][..], |t| &t.alpn))),
        Var::TlsRequestSize => int(if tls().is_some() { e.request_size } else { 0 }),
        Var::TlsResponseSize => int(if tls().is_some() { e.response_size } else { 0 }),
        Var::TlsTotalSize => int(if tls().is_some() {
            e.request_size + e.response_size
        } else {
            0
        }),
        Var::TcpErrorType => Val::Str(
            conn()
                .filter(|_| e.protocol == Protocol::Tcp)
                .map_or("", |c| c.error_type),
        ),
        Var::ConnState(udp) => {
            let want = if udp { Protocol::Udp } else { Protocol::Tcp };
            Val::Str(
                conn()
                    .filter(|_| e.protocol == want)
                    .map_or("", |c| c.state),
            )
        }
        Var::ConnCounter { udp, remote, bytes } => {
            let want = if udp { Protocol::Udp } else { Protocol::Tcp };
            match conn().filter(|_| e.protocol == want) {
                Some(c) => int(match (remote, bytes) {
                    (false, false) => c.client_packets,
                    (true, false) => c.server_packets,
                    (false, true) => e.request_size,
                    (true, true) => e.response_size,
                }),
                None => Val::Int(0),
            }
        }
        Var::Namespaces => pair(&e.src.identity().namespace, &e.dst.identity().namespace),
        Var::Pods => pair(&e.src.identity().pod, &e.dst.identity().pod),
        Var::Services => pair(&e.src.identity().service, &e.dst.identity().service),
        Var::DnsResolutions => pair(&e.src.identity().dns, &e.dst.identity().dns),
        Var::App(k) => match &e.detail {
            Detail::App(a) => match (a.get(k), t) {
                (Some(AppVal::Str(s)), Type::Str) => Val::Str(s),
                (Some(AppVal::Int(i)), Type::Int) => Val::Int(*i),
                (Some(AppVal::Bool(b)), Type::Bool) => Val::Bool(*b),
                _ => default_of(t),
            },
            _ => default_of(t),
        },
        Var::Default => default_of(t),
    }
}
