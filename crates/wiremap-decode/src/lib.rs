//! Frames in, transport segments out.
//!
//! [`Decoder::decode`] peels a captured frame down to its TCP or UDP segment: the link layer
//! (Ethernet with VLAN tags, Linux SLL and SLL2, raw IP, BSD NULL/loopback, NFLOG), IPv4 and
//! IPv6 (extension headers, fragment reassembly), and the overlay tunnels of Kubernetes
//! networks (VXLAN, Geneve, GRE, ERSPAN II/III, IP-in-IP), always yielding the innermost
//! conversation because that is what the service map shows. Nothing here allocates per packet
//! except fragment reassembly, which is capped and counts what it evicts.
#![deny(clippy::unwrap_used)]

mod frag;
mod ip;
mod link;

use std::net::IpAddr;

pub use frag::FragmentStats;
use wiremap_model::Timestamp;

/// Why a frame yielded no segment. Every variant is counted by the caller (by value: it is
/// `Copy` and hashable, so counting a bad packet allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The link type is not one wiremap decodes.
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
    /// A header claims more bytes than the frame holds.
    #[error("truncated {0} header")]
    Truncated(&'static str),
    /// A header field has an impossible value.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// Tunnels nested deeper than wiremap follows.
    #[error("too many nested tunnels")]
    TooDeep,
}

impl DecodeError {
    /// A stable name for counters (`truncated_tcp`, `malformed_ipv4`, …).
    pub fn counter(&self) -> String {
        match self {
            DecodeError::UnsupportedLink(_) => "unsupported_link".into(),
            DecodeError::Truncated(w) => format!("truncated_{w}"),
            DecodeError::Malformed(w) => format!("malformed_{w}"),
            DecodeError::TooDeep => "tunnel_too_deep".into(),
        }
    }
}

/// Link types [`Decoder::decode`] understands.
pub const SUPPORTED_LINKS: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 239, 276];

/// Whether frames of link type `link` can be decoded.
pub fn link_supported(link: u32) -> bool {
    SUPPORTED_LINKS.contains(&link)
}

/// Offset of the IP header in a frame of link type `link`, if it carries IP.
pub fn ip_offset(link: u32, frame: &[u8]) -> Option<usize> {
    let ip = link::strip(link, frame).ok()??;
    Some(frame.len() - ip.len())
}

/// TCP flags.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
}

/// The transport layer of a decoded packet.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(TcpSegment<'a>),
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload.
        payload: &'a [u8],
    },
    /// Another IP protocol (ICMP, SCTP, …), by number.
    Other(u8),
}

/// A frame decoded down to its innermost transport segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport.
    pub transport: Transport<'a>,
    /// Number of tunnel layers removed.
    pub tunnels: u8,
}

/// Counters of what decoding saw besides segments.
#[derive(Debug, Clone, Default)]
pub struct DecodeStats {
    /// Frames that were not IP (ARP, STP, LLDP, …).
    pub non_ip: u64,
    /// Fragments held, reassembled and evicted.
    pub fragments: FragmentStats,
}

/// Stateful decoder (the state is IP fragment reassembly).
#[derive(Debug, Default)]
pub struct Decoder {
    frags: frag::Reassembler,
    stats: DecodeStats,
}

/// Tunnels deeper than this are not followed.
const MAX_DEPTH: u8 = 4;

impl Decoder {
    /// A decoder with default fragment limits.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats.clone();
        s.fragments = self.frags.stats();
        s
    }

    /// Decodes one frame of link type `link`. `Ok(None)` means "not IP, or a fragment still
    /// waiting for the rest".
    pub fn decode<'a>(
        &'a mut self,
        ts: Timestamp,
        link: u32,
        data: &'a [u8],
    ) -> Result<Option<Segment<'a>>, DecodeError> {
        let Some(l3) = link::strip(link, data)? else {
            self.stats.non_ip += 1;
            return Ok(None);
        };
        ip::decode_ip(&mut self.frags, ts, l3, 0)
    }
}
