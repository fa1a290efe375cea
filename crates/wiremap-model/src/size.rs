//! What an entry holds on the heap: memory budgets (the live streams' ring of recent entries)
//! count entries by what they really take, not by an estimate from their encoded size, which
//! misses the allocations of their details by a factor of two to four.

use crate::{AppVal, Detail, Entry};

/// What one allocation costs beyond its bytes (the allocator's header and rounding).
const PER_ALLOCATION: usize = 16;

fn string(s: &String) -> usize {
    match s.capacity() {
        0 => 0,
        cap => cap + PER_ALLOCATION,
    }
}

#[allow(clippy::ptr_arg)] // the capacity is what counts
fn strings(v: &Vec<String>) -> usize {
    let own = if v.capacity() == 0 {
        0
    } else {
        v.capacity() * std::mem::size_of::<String>() + PER_ALLOCATION
    };
    own + v.iter().map(string).sum::<usize>()
}

#[allow(clippy::ptr_arg)] // the capacity is what counts
fn pairs(v: &Vec<(String, String)>) -> usize {
    let own = if v.capacity() == 0 {
        0
    } else {
        v.capacity() * std::mem::size_of::<(String, String)>() + PER_ALLOCATION
    };
    own + v.iter().map(|(a, b)| string(a) + string(b)).sum::<usize>()
}

impl Entry {
    /// Bytes this entry takes: itself, and what it holds on the heap (strings, lists,
    /// details; identities are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        let s = string;
        let detail = match &self.detail {
            Detail::None => 0,
            Detail::Http(h) => {
                std::mem::size_of_val(&**h)
                    + PER_ALLOCATION
                    + [
                        &h.method,
                        &h.url,
                        &h.path,
                        &h.http_version,
                        &h.host,
                        &h.status_text,
                        &h.upgrade,
                        &h.gql_operation,
                    ]
                    .into_iter()
                    .map(s)
                    .sum::<usize>()
                    + pairs(&h.request_headers)
                    + pairs(&h.response_headers)
            }
            Detail::Dns(d) => {
                std::mem::size_of_val(&**d)
                    + PER_ALLOCATION
                    + strings(&d.questions)
                    + strings(&d.question_types)
                    + strings(&d.answers)
            }
            Detail::Tls(t) => {
                std::mem::size_of_val(&**t)
                    + PER_ALLOCATION
                    + s(&t.sni)
                    + strings(&t.alpn)
                    + s(&t.client_version)
                    + s(&t.server_version)
                    + s(&t.server_alpn)
            }
            Detail::Conn(c) => std::mem::size_of_val(&**c) + PER_ALLOCATION,
            Detail::App(a) => {
                let fields = if a.fields.capacity() == 0 {
                    0
                } else {
                    a.fields.capacity() * std::mem::size_of::<(&str, AppVal)>() + PER_ALLOCATION
                };
                std::mem::size_of_val(&**a)
                    + PER_ALLOCATION
                    + fields
                    + a.fields
                        .iter()
                        .map(|(_, v)| match v {
                            AppVal::Str(x) => s(x),
                            _ => 0,
                        })
                        .sum::<usize>()
            }
        };
        std::mem::size_of::<Entry>() + s(&self.node_name) + strings(&self.seen_by) + detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppInfo, DnsInfo, Endpoint, Protocol, Timestamp, Transport};

    fn entry(detail: Detail) -> Entry {
        Entry {
            id: 1,
            stream: 1,
            index: 0,
            timestamp: Timestamp(0),
            elapsed_time: 0,
            protocol: Protocol::Dns,
            transport: Transport::Udp,
            src: Endpoint::new("10.0.0.1".parse().expect("ip"), 1),
            dst: Endpoint::new("10.0.0.2".parse().expect("ip"), 53),
            request_size: 0,
            response_size: 0,
            has_response: false,
            status_code: 0,
            error: false,
            node_name: String::new(),
            seen_by: Vec::new(),
            client_isn: None,
            detail,
        }
    }

    #[test]
    fn details_count_what_they_hold() {
        let bare = entry(Detail::None).heap_bytes();
        assert_eq!(bare, std::mem::size_of::<Entry>());
        let dns = entry(Detail::Dns(Box::new(DnsInfo {
            questions: vec!["a".repeat(1000)],
            ..DnsInfo::default()
        })));
        assert!(dns.heap_bytes() >= bare + 1000 + std::mem::size_of::<String>());
        let app = entry(Detail::App(Box::new(
            AppInfo::default().str("mysql_query", "x".repeat(500)),
        )));
        assert!(app.heap_bytes() >= bare + 500);
    }
}
