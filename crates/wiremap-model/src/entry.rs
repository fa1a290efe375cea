use std::fmt;

use serde::ser::{SerializeMap, Serializer};

use crate::{Endpoint, Timestamp};

/// Transport under an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// The most specific application protocol of an entry (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.x or HTTP/2.
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// GraphQL over HTTP.
    Gql,
    /// WebSocket.
    Ws,
    /// DNS (also LLMNR and mDNS, which share its format).
    Dns,
    /// A TLS handshake.
    Tls,
    /// Redis RESP.
    Redis,
    /// Kafka.
    Kafka,
    /// AMQP 0-9-1.
    Amqp,
    /// PostgreSQL.
    Postgresql,
    /// MySQL.
    Mysql,
    /// MongoDB.
    Mongodb,
    /// A TCP connection no dissector recognised.
    Tcp,
    /// A UDP flow no dissector recognised.
    Udp,
}

impl Protocol {
    /// Every protocol, in a stable order.
    pub const ALL: [Protocol; 14] = [
        Protocol::Http,
        Protocol::Grpc,
        Protocol::Gql,
        Protocol::Ws,
        Protocol::Dns,
        Protocol::Tls,
        Protocol::Redis,
        Protocol::Kafka,
        Protocol::Amqp,
        Protocol::Postgresql,
        Protocol::Mysql,
        Protocol::Mongodb,
        Protocol::Tcp,
        Protocol::Udp,
    ];

    /// The KFL / JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Gql => "gql",
            Protocol::Ws => "ws",
            Protocol::Dns => "dns",
            Protocol::Tls => "tls",
            Protocol::Redis => "redis",
            Protocol::Kafka => "kafka",
            Protocol::Amqp => "amqp",
            Protocol::Postgresql => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Mongodb => "mongodb",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Parses a KFL / JSON name.
    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// HTTP/1.x request and response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpInfo {
    /// Request method.
    pub method: String,
    /// Request target as sent (path and query, or absolute form).
    pub url: String,
    /// Path without the query.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub http_version: String,
    /// `Host` header.
    pub host: String,
    /// Reason phrase of the response.
    pub status_text: String,
    /// Request headers, names lowercase, in order (secrets redacted).
    pub request_headers: Vec<(String, String)>,
    /// Response headers, names lowercase, in order (secrets redacted).
    pub response_headers: Vec<(String, String)>,
    /// Bytes of the request head.
    pub request_headers_size: u64,
    /// Bytes of the request body (decoded from chunking).
    pub request_body_size: u64,
    /// Bytes of the response head.
    pub response_headers_size: u64,
    /// Bytes of the response body (decoded from chunking).
    pub response_body_size: u64,
    /// Protocol the connection switched to (`websocket`, `h2c`, `tunnel`), if any.
    pub upgrade: String,
    /// GraphQL operation type and name (`query GetUser`), when the request carried one.
    pub gql_operation: String,
}

/// A DNS query and its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsInfo {
    /// Question names.
    pub questions: Vec<String>,
    /// Question types (`A`, `AAAA`, …).
    pub question_types: Vec<String>,
    /// Answer data (addresses, CNAME targets, …).
    pub answers: Vec<String>,
    /// Bytes of the query message.
    pub request_length: u64,
    /// Bytes of the response message.
    pub response_length: u64,
}

/// A TLS handshake as seen in the clear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Server name indication.
    pub sni: String,
    /// ALPN protocols offered by the client.
    pub alpn: Vec<String>,
    /// Highest version offered by the client (`TLS 1.3`, …).
    pub client_version: String,
    /// Version the server chose, when its hello was seen.
    pub server_version: String,
    /// ALPN protocol the server chose.
    pub server_alpn: String,
}

/// Counters of a connection or flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// Packets client → server.
    pub client_packets: u64,
    /// Packets server → client.
    pub server_packets: u64,
    /// `open`, `closed`.
    pub state: &'static str,
    /// `reset`, `gap`, or `""`.
    pub error_type: &'static str,
}

/// A value of an application field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppVal {
    /// Text.
    Str(String),
    /// Number.
    Int(i64),
    /// Flag.
    Bool(bool),
}

/// Fields of a protocol whose entries are described by their KFL variables directly
/// (`redis_command`, `kafka_api_key_name`, `postgresql_query`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppInfo {
    /// Variable name and value, in a stable order.
    pub fields: Vec<(&'static str, AppVal)>,
}

impl AppInfo {
    /// Adds a field: `k` must be one of [`crate::APP_FIELDS`] (stores read only those back).
    pub fn push(&mut self, k: &'static str, v: AppVal) {
        debug_assert!(
            crate::app_field(k).is_some(),
            "application field `{k}` is missing from APP_FIELDS"
        );
        self.fields.push((k, v));
    }

    /// Adds a text field.
    pub fn str(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.push(k, AppVal::Str(v.into()));
        self
    }

    /// Adds a number field.
    pub fn int(mut self, k: &'static str, v: i64) -> Self {
        self.push(k, AppVal::Int(v));
        self
    }

    /// Adds a flag field.
    pub fn bool(mut self, k: &'static str, v: bool) -> Self {
        self.push(k, AppVal::Bool(v));
        self
    }

    /// Looks a field up.
    pub fn get(&self, k: &str) -> Option<&AppVal> {
        self.fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
    }
}

/// The protocol-specific part of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// Nothing beyond the common fields.
    #[default]
    None,
    /// HTTP.
    Http(Box<HttpInfo>),
    /// DNS.
    Dns(Box<DnsInfo>),
    /// TLS.
    Tls(Box<TlsInfo>),
    /// A connection or flow with no recognised application protocol.
    Conn(Box<ConnInfo>),
    /// Any other protocol, as KFL fields.
    App(Box<AppInfo>),
}

/// One application-level exchange: a request with its response, a query with its answer, a
/// TLS handshake, or one unrecognised connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unique within one run, increasing in emission order.
    pub id: u64,
    /// Flow the entry belongs to.
    pub stream: u64,
    /// Index of the entry within its flow.
    pub index: u32,
    /// Start of the exchange.
    pub timestamp: Timestamp,
    /// Request → response latency in microseconds (0 without a response).
    pub elapsed_time: i64,
    /// Most specific protocol.
    pub protocol: Protocol,
    /// Transport.
    pub transport: Transport,
    /// Client.
    pub src: Endpoint,
    /// Server.
    pub dst: Endpoint,
    /// Bytes client → server.
    pub request_size: u64,
    /// Bytes server → client.
    pub response_size: u64,
    /// Whether a response was seen.
    pub has_response: bool,
    /// HTTP status, DNS rcode, …; 0 when none.
    pub status_code: i64,
    /// Whether the exchange failed on the server's side or the connection's: HTTP ≥ 500,
    /// gRPC status ≠ 0, DNS rcode ≠ 0, Redis error replies, MySQL ERR, PostgreSQL
    /// ErrorResponse, MongoDB `ok: 0`, AMQP close codes ≥ 300, refused / reset / unanswered
    /// connections. HTTP 4xx are the client's errors, counted apart ([`Entry::client_error`]).
    pub error: bool,
    /// Capture node: the node whose observation this is (in cluster mode, the one kept when
    /// two agents saw the exchange).
    pub node_name: String,
    /// Other capture nodes that saw the same exchange (cluster mode; evidence only: the
    /// exchange counts once, under `node_name`).
    pub seen_by: Vec<String>,
    /// The client's initial TCP sequence number, when the capture saw the handshake. With the
    /// client's address and port it names the connection the same way on every node that
    /// sees it, so the hub can tell two agents' observations of one exchange apart from two
    /// exchanges.
    pub client_isn: Option<u32>,
    /// Protocol-specific fields.
    pub detail: Detail,
}

impl Entry {
    /// An HTTP 4xx answer (HTTP/1, HTTP/2 and GraphQL over either): the request was refused
    /// as the client's fault. Maps count these apart from `error` (a 404 storm is news, but
    /// not a failing server). gRPC entries carry the gRPC status, never an HTTP one.
    pub fn client_error(&self) -> bool {
        matches!(self.protocol, Protocol::Http | Protocol::Gql)
            && self.has_response
            && (400..500).contains(&self.status_code)
    }
}

struct Headers<'a>(&'a [(String, String)]);

impl serde::Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        let map: std::collections::BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        m.serialize_entry("headers", &map)?;
        m.end()
    }
}

impl serde::Serialize for Entry {
    /// JSON with the KFL variable names (`src.ip`, `status_code`, `dns_questions`, …).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.protocol;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("stream", &self.stream.to_string())?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("elapsed_time", &self.elapsed_time)?;
        m.serialize_entry("protocol", &p)?;
        let http = matches!(p, Protocol::Http | Protocol::Grpc | Protocol::Gql);
        if http {
            m.serialize_entry("http", &true)?;
        }
        if p != Protocol::Http {
            m.serialize_entry(p.as_str(), &true)?;
        }
        m.serialize_entry("src", &self.src)?;
        m.serialize_entry("dst", &self.dst)?;
        if !self.node_name.is_empty() {
            m.serialize_entry("node_name", &self.node_name)?;
        }
        if !self.seen_by.is_empty() {
            m.serialize_entry("seen_by", &self.seen_by)?;
        }
        m.serialize_entry("request_size", &self.request_size)?;
        m.serialize_entry("response_size", &self.response_size)?;
        m.serialize_entry("status_code", &self.status_code)?;
        m.serialize_entry("error", &self.error)?;
        // Without a response `elapsed_time` and `status_code` are 0 by convention (KFL's
        // defaults): this says it was no answer, not an instant one.
        if !self.has_response {
            m.serialize_entry("no_response", &true)?;
        }
        match &self.detail {
            Detail::None => {}
            Detail::Http(h) => {
                m.serialize_entry("method", &h.method)?;
                m.serialize_entry("url", &h.url)?;
                m.serialize_entry("path", &h.path)?;
                m.serialize_entry("http_version", &h.http_version)?;
                if !h.host.is_empty() {
                    m.serialize_entry("host", &h.host)?;
                }
                if !h.status_text.is_empty() {
                    m.serialize_entry("status_text", &h.status_text)?;
                }
                m.serialize_entry("request", &Headers(&h.request_headers))?;
                m.serialize_entry("response", &Headers(&h.response_headers))?;
                m.serialize_entry("request_headers_size", &h.request_headers_size)?;
                m.serialize_entry("request_body_size", &h.request_body_size)?;
                m.serialize_entry("response_headers_size", &h.response_headers_size)?;
                m.serialize_entry("response_body_size", &h.response_body_size)?;
                if !h.upgrade.is_empty() {
                    m.serialize_entry("upgrade", &h.upgrade)?;
                }
                if !h.gql_operation.is_empty() {
                    m.serialize_entry("gql_operation", &h.gql_operation)?;
                    let v2 = h.http_version == "HTTP/2";
                    m.serialize_entry("gqlv1", &!v2)?;
                    m.serialize_entry("gqlv2", &v2)?;
                }
            }
            Detail::Dns(d) => {
                m.serialize_entry("dns_questions", &d.questions)?;
                m.serialize_entry("dns_question_types", &d.question_types)?;
                m.serialize_entry("dns_answers", &d.answers)?;
                m.serialize_entry("dns_request", &true)?;
                m.serialize_entry("dns_response", &self.has_response)?;
                m.serialize_entry("dns_request_length", &d.request_length)?;
                m.serialize_entry("dns_response_length", &d.response_length)?;
                m.serialize_entry("dns_total_size", &(d.request_length + d.response_length))?;
            }
            Detail::Tls(t) => {
                m.serialize_entry("tls_sni", &t.sni)?;
                m.serialize_entry("tls_alpn", &t.alpn)?;
                let summary = if t.sni.is_empty() {
                    t.client_version.clone()
                } else {
                    format!("{} {}", t.client_version, t.sni)
                };
                m.serialize_entry("tls_summary", &summary)?;
                m.serialize_entry("tls_info", &t.server_version)?;
                m.serialize_entry("tls_request_size", &self.request_size)?;
                m.serialize_entry("tls_response_size", &self.response_size)?;
                m.serialize_entry("tls_total_size", &(self.request_size + self.response_size))?;
            }
            Detail::App(a) => {
                for (k, v) in &a.fields {
                    match v {
                        AppVal::Str(s) => m.serialize_entry(k, s)?,
                        AppVal::Int(i) => m.serialize_entry(k, i)?,
                        AppVal::Bool(b) => m.serialize_entry(k, b)?,
                    }
                }
            }
            Detail::Conn(c) => {
                let prefix = if p == Protocol::Udp { "flow" } else { "conn" };
                m.serialize_entry("conn_state", c.state)?;
                m.serialize_entry(&format!("{prefix}_local_pkts"), &c.client_packets)?;
                m.serialize_entry(&format!("{prefix}_local_bytes"), &self.request_size)?;
                m.serialize_entry(&format!("{prefix}_remote_pkts"), &c.server_packets)?;
                m.serialize_entry(&format!("{prefix}_remote_bytes"), &self.response_size)?;
                if p == Protocol::Tcp {
                    m.serialize_entry("tcp_error_type", c.error_type)?;
                }
            }
        }
        m.end()
    }
}
