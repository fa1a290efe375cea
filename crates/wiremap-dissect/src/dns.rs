//! DNS over UDP and TCP (also LLMNR and mDNS, which share the format): queries paired with
//! responses by transaction id, and every A/AAAA answer handed to identity with the name the
//! client asked for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wiremap_model::{Detail, Direction, DnsInfo, DropReason, Protocol, Timestamp, Transport};

use crate::{Cx, DissectConfig, Dissector, DnsAnswer, Next, Probe, Verdict};

/// Why a DNS message did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends before a field it announces.
    Truncated,
    /// A field is impossible (a pointer loop, a name too long, absurd counts).
    Malformed,
}

/// Record data wiremap looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Canonical name.
    Cname(String),
    /// Anything else.
    Other,
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name, lowercase, without the final dot.
    pub name: String,
    /// Type number.
    pub qtype: u16,
}

/// An answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: String,
    /// Type number.
    pub rtype: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Data.
    pub data: RData,
}

/// A parsed DNS message (answer section only; authority and additional are checked, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// QR bit.
    pub response: bool,
    /// Opcode.
    pub opcode: u8,
    /// Response code.
    pub rcode: u8,
    /// Questions.
    pub questions: Vec<Question>,
    /// Answers, the first [`MAX_ANSWERS`].
    pub answers: Vec<Record>,
    /// Answer records read but not kept (past [`MAX_ANSWERS`]).
    pub answers_dropped: usize,
}

/// Answer records kept per message; a reply with more keeps its entry and these.
pub const MAX_ANSWERS: usize = 1024;

/// Name of a record type.
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        41 => "OPT".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

fn be16(d: &[u8], i: usize) -> Result<u16, DnsError> {
    Ok(u16::from_be_bytes([
        *d.get(i).ok_or(DnsError::Truncated)?,
        *d.get(i + 1).ok_or(DnsError::Truncated)?,
    ]))
}

/// Reads a possibly compressed name at `pos`; returns it and the position after it.
fn read_name(d: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut after = None;
    let mut hops = 0;
    loop {
        let len = *d.get(pos).ok_or(DnsError::Truncated)?;
        match len >> 6 {
            0 => {
                if len == 0 {
                    pos += 1;
                    break;
                }
                let l = usize::from(len);
                let label = d.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &c in label {
                    let c = c.to_ascii_lowercase();
                    if c.is_ascii_graphic() {
                        name.push(c as char);
                    } else {
                        name.push_str(&format!("\\{c:03}"));
                    }
                }
                if name.len() > 1024 {
                    return Err(DnsError::Malformed);
                }
                pos += 1 + l;
            }
            3 => {
                let low = *d.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if after.is_none() {
                    after = Some(pos + 2);
                }
                hops += 1;
                if hops > 64 || target >= d.len() {
                    return Err(DnsError::Malformed);
                }
                pos = target;
            }
            _ => return Err(DnsError::Malformed),
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Ok((name, after.unwrap_or(pos)))
}

/// Parses a whole DNS message.
pub fn parse(d: &[u8]) -> Result<Message, DnsError> {
    if d.len() < 12 {
        return Err(DnsError::Truncated);
    }
    let id = be16(d, 0)?;
    let flags = be16(d, 2)?;
    let qd = usize::from(be16(d, 4)?);
    let an = usize::from(be16(d, 6)?);
    let ns = usize::from(be16(d, 8)?);
    let ar = usize::from(be16(d, 10)?);
    // Every record takes at least 11 bytes, so the counts cannot make this loop long: a
    // message that claims more records than it holds ends as `Truncated`.
    if qd > 64 {
        return Err(DnsError::Malformed);
    }
    let mut pos = 12;
    let mut questions = Vec::with_capacity(qd);
    for _ in 0..qd {
        let (name, p) = read_name(d, pos)?;
        let qtype = be16(d, p)?;
        be16(d, p + 2)?;
        pos = p + 4;
        questions.push(Question { name, qtype });
    }
    let mut answers = Vec::new();
    let mut answers_dropped = 0;
    for i in 0..an + ns + ar {
        let (name, p) = read_name(d, pos)?;
        let rtype = be16(d, p)?;
        let ttl_hi = be16(d, p + 4)?;
        let ttl_lo = be16(d, p + 6)?;
        let rdlen = usize::from(be16(d, p + 8)?);
        let rd = p + 10;
        let rdata = d.get(rd..rd + rdlen).ok_or(DnsError::Truncated)?;
        pos = rd + rdlen;
        if i >= an {
            continue;
        }
        if answers.len() >= MAX_ANSWERS {
            answers_dropped += 1;
            continue;
        }
        let data = match (rtype, rdlen) {
            (1, 4) => RData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                RData::Aaaa(Ipv6Addr::from(a))
            }
            (5, _) => RData::Cname(read_name(d, rd)?.0),
            (1 | 28, _) => return Err(DnsError::Malformed),
            _ => RData::Other,
        };
        answers.push(Record {
            name,
            rtype,
            ttl: (u32::from(ttl_hi) << 16) | u32::from(ttl_lo),
            data,
        });
    }
    if d[pos..].iter().any(|&b| b != 0) {
        return Err(DnsError::Malformed);
    }
    Ok(Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        rcode: (flags & 0x0f) as u8,
        questions,
        answers,
        answers_dropped,
    })
}

/// NetBIOS name service shares DNS's layout; its names are 32 letters `A`–`P`.
fn is_nbns(m: &Message) -> bool {
    m.questions
        .iter()
        .map(|q| &q.name)
        .chain(m.answers.iter().map(|r| &r.name))
        .any(|n| {
            let first = n.split('.').next().unwrap_or("");
            first.len() == 32 && first.bytes().all(|c| (b'a'..=b'p').contains(&c))
        })
}

fn plausible(m: &Message) -> bool {
    m.opcode <= 6 && (m.response || !m.questions.is_empty()) && !is_nbns(m)
}

/// DNS in UDP datagrams.
#[derive(Debug)]
pub struct DnsUdpProbe;

impl Probe for DnsUdpProbe {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn probe(&self, _dir: Direction, data: &[u8]) -> Verdict {
        match parse(data) {
            Ok(m) if plausible(&m) => Verdict::Yes,
            _ => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Dns::new(false))
    }
}

/// DNS over TCP (two-byte length prefix).
#[derive(Debug)]
pub struct DnsTcpProbe;

impl Probe for DnsTcpProbe {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    fn probe(&self, _dir: Direction, data: &[u8]) -> Verdict {
        if data.len() < 14 {
            return Verdict::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        if len < 12 {
            return Verdict::No;
        }
        let qd = u16::from_be_bytes([data[6], data[7]]);
        let opcode = (data[4] >> 3) & 0x0f;
        if qd > 64 || opcode > 6 {
            return Verdict::No;
        }
        match data.get(2..2 + len) {
            Some(msg) => match parse(msg) {
                Ok(m) if plausible(&m) => Verdict::Yes,
                _ => Verdict::No,
            },
            None if data.len() < 4096 => Verdict::NeedMore,
            None => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Dns::new(true))
    }
}

#[derive(Debug)]
struct Pending {
    id: u16,
    ts: Timestamp,
    client: Direction,
    info: DnsInfo,
    size: u64,
}

/// Most unanswered queries held per flow.
const MAX_PENDING: usize = 256;
/// Largest DNS-over-TCP message.
const MAX_TCP_MESSAGE: usize = 65_535 + 2;

/// The DNS dissector of one flow.
#[derive(Debug)]
pub struct Dns {
    tcp: bool,
    pending: Vec<Pending>,
    buf: [Vec<u8>; 2],
    /// Timestamp of the first buffered byte per direction.
    buf_ts: [Timestamp; 2],
    lost: [bool; 2],
}

impl Dns {
    /// A dissector for DNS over TCP (`tcp`) or UDP.
    pub fn new(tcp: bool) -> Self {
        Dns {
            tcp,
            pending: Vec::new(),
            buf: [Vec::new(), Vec::new()],
            buf_ts: [Timestamp(0); 2],
            lost: [false; 2],
        }
    }

    fn emit(&self, cx: &mut Cx<'_>, p: Pending, resp: Option<(Timestamp, &Message, u64)>) {
        let mut info = p.info;
        let (rts, rcode, rsize) = match resp {
            Some((t, m, size)) if cx.lean => {
                info.response_length = size;
                (Some(t), i64::from(m.rcode), size)
            }
            Some((t, m, size)) => {
                info.answers = m
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.to_string()),
                        RData::Aaaa(a) => Some(a.to_string()),
                        RData::Cname(c) => Some(c.clone()),
                        RData::Other => None,
                    })
                    .collect();
                info.response_length = size;
                (Some(t), i64::from(m.rcode), size)
            }
            None => (None, 0, 0),
        };
        cx.emit(
            p.client,
            Protocol::Dns,
            p.ts,
            rts,
            p.size,
            rsize,
            rcode,
            rcode != 0,
            Detail::Dns(Box::new(info)),
        );
    }

    fn message(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, raw: &[u8]) {
        let m = match parse(raw) {
            Ok(m) => m,
            Err(_) => {
                cx.stats.event(DropReason::DnsMalformed);
                return;
            }
        };
        if !m.response {
            if let Some(i) = self
                .pending
                .iter()
                .position(|p| p.id == m.id && p.client == dir)
            {
                let old = self.pending.remove(i);
                self.emit(cx, old, None);
            }
            if self.pending.len() >= MAX_PENDING {
                let old = self.pending.remove(0);
                cx.stats.event(DropReason::DnsPendingEvicted);
                self.emit(cx, old, None);
            }
            self.pending.push(Pending {
                id: m.id,
                ts,
                client: dir,
                size: raw.len() as u64,
                info: DnsInfo {
                    questions: if cx.lean {
                        Vec::new()
                    } else {
                        m.questions.iter().map(|q| q.name.clone()).collect()
                    },
                    question_types: if cx.lean {
                        Vec::new()
                    } else {
                        m.questions.iter().map(|q| type_name(q.qtype)).collect()
                    },
                    answers: Vec::new(),
                    request_length: raw.len() as u64,
                    response_length: 0,
                },
            });
            return;
        }
        if m.answers_dropped > 0 {
            cx.stats.event(DropReason::DnsAnswersTruncated);
        }
        answers_for_identity(&m, ts, &mut cx.out.answers);
        match self
            .pending
            .iter()
            .position(|p| p.id == m.id && p.client == dir.flip())
        {
            Some(i) => {
                let p = self.pending.remove(i);
                self.emit(cx, p, Some((ts, &m, raw.len() as u64)));
            }
            None => cx.stats.event(DropReason::DnsUnmatchedResponse),
        }
    }
}

/// Every A/AAAA answer with the name the client asked for (CNAME chains followed back).
pub fn answers_for_identity(m: &Message, ts: Timestamp, out: &mut Vec<DnsAnswer>) {
    let Some(q) = m.questions.first() else {
        return;
    };
    let mut chain: Vec<&str> = vec![q.name.as_str()];
    // CNAMEs may come in any order: extend the chain until it stops growing.
    for _ in 0..16 {
        let before = chain.len();
        for r in &m.answers {
            if let RData::Cname(t) = &r.data {
                if chain.contains(&r.name.as_str()) && !chain.contains(&t.as_str()) {
                    chain.push(t);
                }
            }
        }
        if chain.len() == before {
            break;
        }
    }
    for r in &m.answers {
        let addr = match r.data {
            RData::A(a) => IpAddr::V4(a),
            RData::Aaaa(a) => IpAddr::V6(a),
            _ => continue,
        };
        let name = if chain.contains(&r.name.as_str()) {
            &q.name
        } else {
            &r.name
        };
        out.push(DnsAnswer {
            ts,
            addr,
            name: name.clone(),
            ttl: r.ttl,
        });
    }
}

impl Dissector for Dns {
    fn held(&self) -> usize {
        self.buf[0].capacity() + self.buf[1].capacity()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        if !self.tcp {
            self.message(cx, dir, ts, data);
            return Next::Continue;
        }
        let di = dir.index();
        if self.lost[di] {
            return Next::Continue;
        }
        if self.buf[di].is_empty() {
            self.buf_ts[di] = ts;
        }
        self.buf[di].extend_from_slice(data);
        let mut at = 0;
        loop {
            let b = &self.buf[di][at..];
            if b.len() < 2 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
            if b.len() < 2 + len {
                break;
            }
            let msg = b[2..2 + len].to_vec();
            let t = if at == 0 { self.buf_ts[di] } else { ts };
            self.message(cx, dir, t, &msg);
            at += 2 + len;
        }
        self.buf[di].drain(..at);
        if !self.buf[di].is_empty() && at > 0 {
            self.buf_ts[di] = ts;
        }
        if self.buf[di].len() > MAX_TCP_MESSAGE {
            cx.stats.event(DropReason::DnsDesync);
            self.buf[di].clear();
            self.lost[di] = true;
        }
        Next::Continue
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Direction, _ts: Timestamp, _len: u64) {
        if self.tcp {
            // Length-prefixed framing cannot be recovered after a hole.
            cx.stats.event(DropReason::DnsGapDesync);
            self.buf[dir.index()].clear();
            self.lost[dir.index()] = true;
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        for p in std::mem::take(&mut self.pending) {
            self.emit(cx, p, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for `www.example.com` A via a CNAME, with compression.
    pub(crate) fn sample_response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        // CNAME www.example.com -> edge.cdn.net
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 14]);
        m.extend_from_slice(b"\x04edge\x03cdn\x03net\x00");
        let edge = 12 + 21 + 12;
        m.extend_from_slice(&[
            0xc0, edge as u8, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 93, 184, 216, 34,
        ]);
        m
    }

    #[test]
    fn cname_chain_maps_to_the_asked_name() {
        let m = parse(&sample_response()).expect("parses");
        assert_eq!(m.questions[0].name, "www.example.com");
        let mut out = Vec::new();
        answers_for_identity(&m, Timestamp(5), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "www.example.com");
        assert_eq!(out[0].addr.to_string(), "93.184.216.34");
        assert_eq!(out[0].ttl, 256);
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let full = sample_response();
        for n in 0..full.len() {
            assert!(parse(&full[..n]).is_err(), "prefix {n} parsed");
        }
    }

    #[test]
    fn a_reply_with_many_records_keeps_the_first() {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0x07, 0xd0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03big\x07example\x00\x00\x01\x00\x01");
        for i in 0..2000u32 {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
        }
        let p = parse(&m).expect("parses");
        assert_eq!(p.answers.len(), MAX_ANSWERS);
        assert_eq!(p.answers_dropped, 2000 - MAX_ANSWERS);
        assert_eq!(p.answers[0].data, RData::A(Ipv4Addr::new(10, 0, 0, 0)));
        // Counts larger than the message are still refused.
        let mut lying = m.clone();
        lying[6] = 0xff;
        assert_eq!(parse(&lying), Err(DnsError::Truncated));
    }

    #[test]
    fn pointer_loop_is_malformed() {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::Malformed));
    }
}
