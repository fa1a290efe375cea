//! A compact binary form of entries: varints, length-prefixed strings, and identities written
//! once per segment and referred to by number.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use wiremap_model::{
    AppInfo, AppVal, ConnInfo, Detail, DnsInfo, Endpoint, Entry, HttpInfo, Identity, IdentityKind,
    Protocol, Timestamp, TlsInfo, Transport,
};

/// A record that does not decode (the store treats it as the end of good data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt record: {0}")]
pub struct Corrupt(pub &'static str);

type R<T> = Result<T, Corrupt>;

pub(crate) fn put_u(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_i(out: &mut Vec<u8>, v: i64) {
    put_u(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_s(out: &mut Vec<u8>, s: &str) {
    put_u(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads what `put_*` wrote.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor { b }
    }

    pub(crate) fn u(&mut self) -> R<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&c, rest) = self.b.split_first().ok_or(Corrupt("short varint"))?;
            self.b = rest;
            v |= u64::from(c & 0x7f) << shift;
            if c & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("long varint"))
    }

    pub(crate) fn i(&mut self) -> R<i64> {
        let u = self.u()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn byte(&mut self) -> R<u8> {
        let (&c, rest) = self.b.split_first().ok_or(Corrupt("short record"))?;
        self.b = rest;
        Ok(c)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        self.bytes(n)
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b
    }

    fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        if self.b.len() < n {
            return Err(Corrupt("short record"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    pub(crate) fn s(&mut self) -> R<String> {
        let n = usize::try_from(self.u()?).map_err(|_| Corrupt("length"))?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Corrupt("utf-8"))
    }

    /// Whether everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    pub(crate) fn strings(&mut self) -> R<Vec<String>> {
        let n = self.count()?;
        (0..n).map(|_| self.s()).collect()
    }

    fn pairs(&mut self) -> R<Vec<(String, String)>> {
        let n = self.count()?;
        (0..n).map(|_| Ok((self.s()?, self.s()?))).collect()
    }

    pub(crate) fn count(&mut self) -> R<usize> {
        let n = self.u()?;
        // Every element takes at least one byte.
        if n > self.b.len() as u64 {
            return Err(Corrupt("count"));
        }
        Ok(n as usize)
    }
}

pub(crate) fn put_strings(out: &mut Vec<u8>, v: &[String]) {
    put_u(out, v.len() as u64);
    for s in v {
        put_s(out, s);
    }
}

fn put_pairs(out: &mut Vec<u8>, v: &[(String, String)]) {
    put_u(out, v.len() as u64);
    for (a, b) in v {
        put_s(out, a);
        put_s(out, b);
    }
}

fn known(s: &str, options: &'static [&'static str]) -> &'static str {
    wiremap_model::known_name(options, s).unwrap_or("")
}

const KINDS: [IdentityKind; 7] = [
    IdentityKind::Pod,
    IdentityKind::Service,
    IdentityKind::Node,
    IdentityKind::Dns,
    IdentityKind::Hint,
    IdentityKind::Zone,
    IdentityKind::Ip,
];

/// Encodes an identity.
pub fn put_identity(out: &mut Vec<u8>, id: &Identity) {
    out.push(KINDS.iter().position(|k| *k == id.kind).unwrap_or(6) as u8);
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
        put_s(out, s);
    }
    put_u(out, id.labels.len() as u64);
    for (k, v) in &id.labels {
        put_s(out, k);
        put_s(out, v);
    }
    put_s(out, id.resolution_status);
}

pub(crate) fn get_identity(c: &mut Cursor<'_>) -> R<Identity> {
    let kind = *KINDS
        .get(usize::from(c.byte()?))
        .ok_or(Corrupt("identity kind"))?;
    let mut id = Identity {
        kind,
        name: c.s()?,
        namespace: c.s()?,
        dns: c.s()?,
        zone: c.s()?,
        pod: c.s()?,
        service: c.s()?,
        workload_kind: c.s()?,
        workload_name: c.s()?,
        node: c.s()?,
        ..Identity::default()
    };
    let n = c.count()?;
    for _ in 0..n {
        let k = c.s()?;
        id.labels.insert(k, c.s()?);
    }
    id.resolution_status = known(&c.s()?, wiremap_model::RESOLUTION_STATUSES);
    Ok(id)
}

pub(crate) fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

pub(crate) fn get_ip(c: &mut Cursor<'_>) -> R<IpAddr> {
    match c.byte()? {
        4 => {
            let b = c.bytes(4)?;
            Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
        6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(c.bytes(16)?);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(Corrupt("address family")),
    }
}

/// Encodes an entry; identities are referred to by the numbers `ident` gives them and
/// application field names are written as text (an entry on its own: the agent uplink).
pub fn put_entry(out: &mut Vec<u8>, e: &Entry, ident: &mut dyn FnMut(&Arc<Identity>) -> u64) {
    put_entry_with(out, e, ident, &mut |out, k| put_s(out, k), false);
}

/// Encodes an entry as [`put_entry`] does, but with application field names written by
/// `name` (a segment writes each name once and refers to it by number) and, when `framed`,
/// the details preceded by their length (see [`Layout::Framed`]).
pub(crate) fn put_entry_with(
    out: &mut Vec<u8>,
    e: &Entry,
    ident: &mut dyn FnMut(&Arc<Identity>) -> u64,
    name: &mut dyn FnMut(&mut Vec<u8>, &'static str),
    framed: bool,
) {
    put_u(out, e.id);
    put_u(out, e.stream);
    put_u(out, u64::from(e.index));
    put_i(out, e.timestamp.0);
    put_i(out, e.elapsed_time);
    out.push(
        Protocol::ALL
            .iter()
            .position(|p| *p == e.protocol)
            .unwrap_or(0) as u8,
    );
    out.push(u8::from(e.transport == Transport::Udp));
    for ep in [&e.src, &e.dst] {
        put_ip(out, ep.ip);
        put_u(out, u64::from(ep.port));
        put_u(out, ep.identity.as_ref().map_or(0, &mut *ident));
    }
    put_u(out, e.request_size);
    put_u(out, e.response_size);
    out.push(u8::from(e.has_response) | (u8::from(e.error) << 1));
    put_i(out, e.status_code);
    put_s(out, &e.node_name);
    let start = out.len();
    match &e.detail {
        Detail::None => out.push(0),
        Detail::Http(h) => {
            out.push(1);
            for s in [
                &h.method,
                &h.url,
                &h.path,
                &h.http_version,
                &h.host,
                &h.status_text,
                &h.upgrade,
                &h.gql_operation,
            ] {
                put_s(out, s);
            }
            put_pairs(out, &h.request_headers);
            put_pairs(out, &h.response_headers);
            for v in [
                h.request_headers_size,
                h.request_body_size,
                h.response_headers_size,
                h.response_body_size,
            ] {
                put_u(out, v);
            }
        }
        Detail::Dns(d) => {
            out.push(2);
            put_strings(out, &d.questions);
            put_strings(out, &d.question_types);
            put_strings(out, &d.answers);
            put_u(out, d.request_length);
            put_u(out, d.response_length);
        }
        Detail::Tls(t) => {
            out.push(3);
            put_s(out, &t.sni);
            put_strings(out, &t.alpn);
            put_s(out, &t.client_version);
            put_s(out, &t.server_version);
            put_s(out, &t.server_alpn);
        }
        Detail::Conn(c) => {
            out.push(4);
            put_u(out, c.client_packets);
            put_u(out, c.server_packets);
            put_s(out, c.state);
            put_s(out, c.error_type);
        }
        Detail::App(a) => {
            out.push(5);
            put_u(out, a.fields.len() as u64);
            for (k, v) in &a.fields {
                name(out, k);
                match v {
                    AppVal::Str(s) => {
                        out.push(0);
                        put_s(out, s);
                    }
                    AppVal::Int(i) => {
                        out.push(1);
                        put_i(out, *i);
                    }
                    AppVal::Bool(b) => out.push(2 + u8::from(*b)),
                }
            }
        }
    }
    if framed {
        // The details' length before them: a reader that needs none skips them whole.
        let mut len = Vec::with_capacity(3);
        put_u(&mut len, (out.len() - start) as u64);
        out.splice(start..start, len);
    }
    // Trailing fields, written only when set: records stay as short as before.
    if !e.seen_by.is_empty() || e.client_isn.is_some() {
        put_strings(out, &e.seen_by);
        if let Some(isn) = e.client_isn {
            put_u(out, u64::from(isn));
        }
    }
}

/// Decodes an entry that [`put_entry`] wrote on its own (identities written as 0), as one
/// whole record: bytes left over are an error.
pub fn decode_entry(b: &[u8]) -> Result<Entry, Corrupt> {
    let mut c = Cursor::new(b);
    let e = get_entry(&mut c, &|_| Ok(None), &mut inline_name, Layout::Inline)?;
    if !c.is_empty() {
        return Err(Corrupt("trailing bytes"));
    }
    Ok(e)
}

/// Reads a field name written as text: a name no dissector of this binary emits is `None`
/// (the field is left out).
pub(crate) fn inline_name(c: &mut Cursor<'_>) -> R<Option<&'static str>> {
    let n = usize::try_from(c.u()?).map_err(|_| Corrupt("length"))?;
    let b = c.bytes(n)?;
    Ok(std::str::from_utf8(b)
        .ok()
        .and_then(wiremap_model::app_field))
}

/// Decodes an entry's protocol details.
fn get_detail(
    c: &mut Cursor<'_>,
    name: &mut dyn FnMut(&mut Cursor<'_>) -> R<Option<&'static str>>,
) -> R<Detail> {
    Ok(match c.byte()? {
        0 => Detail::None,
        1 => {
            let mut h = HttpInfo {
                method: c.s()?,
                url: c.s()?,
                path: c.s()?,
                http_version: c.s()?,
                host: c.s()?,
                status_text: c.s()?,
                upgrade: c.s()?,
                gql_operation: c.s()?,
                ..HttpInfo::default()
            };
            h.request_headers = c.pairs()?;
            h.response_headers = c.pairs()?;
            h.request_headers_size = c.u()?;
            h.request_body_size = c.u()?;
            h.response_headers_size = c.u()?;
            h.response_body_size = c.u()?;
            Detail::Http(Box::new(h))
        }
        2 => Detail::Dns(Box::new(DnsInfo {
            questions: c.strings()?,
            question_types: c.strings()?,
            answers: c.strings()?,
            request_length: c.u()?,
            response_length: c.u()?,
        })),
        3 => Detail::Tls(Box::new(TlsInfo {
            sni: c.s()?,
            alpn: c.strings()?,
            client_version: c.s()?,
            server_version: c.s()?,
            server_alpn: c.s()?,
        })),
        4 => Detail::Conn(Box::new(ConnInfo {
            client_packets: c.u()?,
            server_packets: c.u()?,
            state: known(&c.s()?, wiremap_model::CONN_STATES),
            error_type: known(&c.s()?, wiremap_model::CONN_ERRORS),
        })),
        5 => {
            let n = c.count()?;
            let mut a = AppInfo::default();
            for _ in 0..n {
                let k = name(c)?;
                let v = match c.byte()? {
                    0 => AppVal::Str(c.s()?),
                    1 => AppVal::Int(c.i()?),
                    2 => AppVal::Bool(false),
                    3 => AppVal::Bool(true),
                    _ => return Err(Corrupt("field type")),
                };
                if let Some(k) = k {
                    a.fields.push((k, v));
                }
            }
            Detail::App(Box::new(a))
        }
        _ => return Err(Corrupt("detail")),
    })
}

fn get_endpoint(
    c: &mut Cursor<'_>,
    ident: &dyn Fn(u64) -> R<Option<Arc<Identity>>>,
) -> R<Endpoint> {
    let ip = get_ip(c)?;
    let port = u16::try_from(c.u()?).map_err(|_| Corrupt("port"))?;
    let identity = ident(c.u()?)?;
    Ok(Endpoint { ip, port, identity })
}

/// How an entry's details are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Inline (an entry on its own: the agent uplink).
    Inline,
    /// Preceded by their length (the store); `details: false` skips them (they read as
    /// [`Detail::None`]), for a reader that needs only the entry's own fields.
    Framed {
        /// Decode the details.
        details: bool,
    },
}

/// Decodes an entry; `ident` maps the identity numbers back, `name` reads a field name.
pub(crate) fn get_entry(
    c: &mut Cursor<'_>,
    ident: &dyn Fn(u64) -> R<Option<Arc<Identity>>>,
    name: &mut dyn FnMut(&mut Cursor<'_>) -> R<Option<&'static str>>,
    layout: Layout,
) -> R<Entry> {
    let id = c.u()?;
    let stream = c.u()?;
    let index = u32::try_from(c.u()?).map_err(|_| Corrupt("index"))?;
    let timestamp = Timestamp(c.i()?);
    let elapsed_time = c.i()?;
    let protocol = *Protocol::ALL
        .get(usize::from(c.byte()?))
        .ok_or(Corrupt("protocol"))?;
    let transport = if c.byte()? == 1 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let src = get_endpoint(c, ident)?;
    let dst = get_endpoint(c, ident)?;
    let request_size = c.u()?;
    let response_size = c.u()?;
    let flags = c.byte()?;
    let status_code = c.i()?;
    let node_name = c.s()?;
    let detail = match layout {
        Layout::Inline => get_detail(c, name)?,
        Layout::Framed { details } => {
            let n = usize::try_from(c.u()?).map_err(|_| Corrupt("length"))?;
            let mut dc = Cursor::new(c.take(n)?);
            if details {
                let d = get_detail(&mut dc, name)?;
                if !dc.is_empty() {
                    return Err(Corrupt("detail length"));
                }
                d
            } else {
                Detail::None
            }
        }
    };
    // Optional trailing fields: records written before they existed end here.
    let seen_by = if c.is_empty() {
        Vec::new()
    } else {
        c.strings()?
    };
    let client_isn = if c.is_empty() {
        None
    } else {
        Some(u32::try_from(c.u()?).map_err(|_| Corrupt("isn"))?)
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
        has_response: flags & 1 != 0,
        status_code,
        error: flags & 2 != 0,
        node_name,
        seen_by,
        client_isn,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let who = Arc::new(Identity {
            kind: IdentityKind::Pod,
            name: "cart-1".into(),
            namespace: "shop".into(),
            pod: "cart-1".into(),
            workload_kind: "deployment".into(),
            workload_name: "cart".into(),
            labels: [("app".to_string(), "cart".to_string())].into(),
            ..Identity::default()
        });
        Entry {
            id: 7,
            stream: 3,
            index: 1,
            timestamp: Timestamp::from_parts(1_700_000_000, 5),
            elapsed_time: 1234,
            protocol: Protocol::Redis,
            transport: Transport::Tcp,
            src: Endpoint {
                ip: "10.0.0.1".parse().expect("ip"),
                port: 40000,
                identity: Some(who),
            },
            dst: Endpoint::new("fe80::1".parse().expect("ip"), 6379),
            request_size: 30,
            response_size: 5,
            has_response: true,
            status_code: 0,
            error: true,
            node_name: "n1".into(),
            seen_by: Vec::new(),
            client_isn: None,
            detail: Detail::App(Box::new(
                AppInfo::default()
                    .str("redis_command", "GET")
                    .int("redis_total_size", 35)
                    .bool("redis_error", true),
            )),
        }
    }

    #[test]
    fn connection_errors_and_cluster_evidence_round_trip() {
        for error_type in ["reset", "refused", "unanswered", "gap", ""] {
            let mut e = sample();
            e.seen_by = vec!["node-b".into(), "node-c".into()];
            e.client_isn = Some(u32::MAX);
            e.detail = Detail::Conn(Box::new(ConnInfo {
                client_packets: 1,
                server_packets: 0,
                state: "closed",
                error_type,
            }));
            let mut out = Vec::new();
            put_entry(&mut out, &e, &mut |_| 0);
            let mut back = decode_entry(&out).expect("decodes");
            back.src.identity = e.src.identity.clone();
            back.dst.identity = e.dst.identity.clone();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn entries_round_trip_in_both_layouts() {
        let mut e = sample();
        e.seen_by = vec!["node-b".into()];
        for framed in [false, true] {
            let mut ids: Vec<Arc<Identity>> = Vec::new();
            let mut out = Vec::new();
            put_entry_with(
                &mut out,
                &e,
                &mut |i| {
                    ids.push(i.clone());
                    ids.len() as u64
                },
                &mut |out, k| put_s(out, k),
                framed,
            );
            let ident = |n: u64| Ok(n.checked_sub(1).and_then(|i| ids.get(i as usize).cloned()));
            let layout = if framed {
                Layout::Framed { details: true }
            } else {
                Layout::Inline
            };
            let back = get_entry(&mut Cursor::new(&out), &ident, &mut inline_name, layout)
                .expect("decodes");
            assert_eq!(back, e);
            if framed {
                // Details skipped whole: everything else, trailing fields included, is read.
                let lean = get_entry(
                    &mut Cursor::new(&out),
                    &ident,
                    &mut inline_name,
                    Layout::Framed { details: false },
                )
                .expect("decodes");
                assert_eq!(
                    lean,
                    Entry {
                        detail: Detail::None,
                        ..e.clone()
                    }
                );
            }
            // Every prefix fails cleanly, up to the optional trailing fields (an entry cut
            // right before them is whole).
            let mut bare = Vec::new();
            let plain = Entry {
                seen_by: Vec::new(),
                ..e.clone()
            };
            put_entry_with(
                &mut bare,
                &plain,
                &mut |_| 1,
                &mut |out, k| put_s(out, k),
                framed,
            );
            let lean = Layout::Framed { details: false };
            for cut in 0..bare.len() {
                for l in [layout, lean] {
                    if l == lean && !framed {
                        continue;
                    }
                    let r = get_entry(&mut Cursor::new(&out[..cut]), &ident, &mut inline_name, l);
                    assert!(r.is_err(), "prefix {cut} decoded ({l:?})");
                }
            }
        }
    }

    #[test]
    fn identities_round_trip() {
        let e = sample();
        let id = e.src.identity.expect("identity");
        let mut out = Vec::new();
        put_identity(&mut out, &id);
        assert_eq!(get_identity(&mut Cursor::new(&out)).expect("decodes"), *id);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ./:_-]{0,12}"
    }

    fn identity() -> impl Strategy<Value = Option<Arc<Identity>>> {
        proptest::option::of(
            (
                text(),
                text(),
                text(),
                0usize..7,
                proptest::collection::btree_map(text(), text(), 0..3),
            )
                .prop_map(|(name, namespace, workload_name, k, labels)| {
                    Arc::new(Identity {
                        kind: KINDS[k],
                        name,
                        namespace,
                        workload_name,
                        labels,
                        ..Identity::default()
                    })
                }),
        )
    }

    fn detail() -> impl Strategy<Value = Detail> {
        prop_oneof![
            Just(Detail::None),
            (
                text(),
                text(),
                proptest::collection::vec((text(), text()), 0..4),
                any::<u64>()
            )
                .prop_map(|(method, url, headers, size)| Detail::Http(Box::new(
                    HttpInfo {
                        method,
                        url,
                        request_headers: headers,
                        response_body_size: size,
                        ..HttpInfo::default()
                    }
                ))),
            proptest::collection::vec(text(), 0..4).prop_map(|q| Detail::Dns(Box::new(DnsInfo {
                questions: q.clone(),
                answers: q,
                ..DnsInfo::default()
            }))),
            (any::<i64>(), any::<bool>(), text()).prop_map(|(i, b, s)| Detail::App(Box::new(
                AppInfo::default()
                    .int("kafka_api_key", i)
                    .bool("redis_error", b)
                    .str("postgresql_query", s)
            ))),
        ]
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            id in any::<u64>(), stream in any::<u64>(), ts in any::<i64>(), elapsed in any::<i64>(),
            p in 0usize..14, udp in any::<bool>(), a in any::<[u8; 16]>(), v4 in any::<bool>(),
            ports in any::<(u16, u16)>(), sizes in any::<(u64, u64)>(), status in any::<i64>(),
            flags in any::<(bool, bool)>(), src_id in identity(), dst_id in identity(), detail in detail(),
        ) {
            let ip = |b: &[u8; 16], flip: u8| -> std::net::IpAddr {
                if v4 { Ipv4Addr::new(b[0], b[1], b[2], b[3] ^ flip).into() } else { Ipv6Addr::from(*b).into() }
            };
            let e = Entry {
                id, stream, index: (id % 1000) as u32, timestamp: Timestamp(ts), elapsed_time: elapsed,
                protocol: Protocol::ALL[p], transport: if udp { Transport::Udp } else { Transport::Tcp },
                src: Endpoint { ip: ip(&a, 0), port: ports.0, identity: src_id },
                dst: Endpoint { ip: ip(&a, 1), port: ports.1, identity: dst_id },
                request_size: sizes.0, response_size: sizes.1, has_response: flags.0, status_code: status,
                error: flags.1, node_name: "n".into(), seen_by: Vec::new(),
                client_isn: None, detail,
            };
            let mut ids: Vec<Arc<Identity>> = Vec::new();
            let mut out = Vec::new();
            put_entry(&mut out, &e, &mut |i| { ids.push(i.clone()); ids.len() as u64 });
            let back = get_entry(&mut Cursor::new(&out), &|n| Ok(if n == 0 { None } else { ids.get(n as usize - 1).cloned() }), &mut inline_name, Layout::Inline)
                .expect("decodes");
            prop_assert_eq!(back, e);
        }
    }
}
