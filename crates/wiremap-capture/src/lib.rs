//! Packet sources: where packets enter wiremap.
//!
//! A [`PacketSource`] yields one packet at a time from a buffer it owns, so a capture of any
//! size is read in constant memory. [`FileSource`] reads classic pcap (micro- and nanosecond,
//! either byte order) and pcapng (several sections and interfaces, any `if_tsresol`) from any
//! [`std::io::Read`], including standard input; [`Merge`] interleaves several sources in time
//! order. Errors name the record and byte offset where the input went wrong, so the caller
//! can tell the user exactly which part of which file is bad.
#![deny(clippy::unwrap_used)]

mod bpf;
mod dedup;
mod error;
mod file;
mod follow;
mod live;
mod merge;
mod pcapng_writer;
mod readahead;
mod writer;

pub use bpf::{compile_bpf, BpfInsn};
pub use dedup::{Dedup, DEDUP_WINDOW_NS};
pub use error::CaptureError;
pub use file::{FileFormat, FileSource};
pub use live::{FollowCounts, KernelStats, LiveError, LiveSource, RingConfig};
pub use merge::Merge;
pub use pcapng_writer::{PcapngWriter, CUSTOM_PEN};
pub use readahead::ReadAhead;
use wiremap_model::Timestamp;
pub use writer::PcapWriter;

/// A link-layer header type, as numbered by tcpdump's LINKTYPE_ registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback / NULL (4-byte address family).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (as numbered on OpenBSD and in some files).
    pub const RAW_OLD: LinkType = LinkType(12);
    /// Raw IP (LINKTYPE_RAW).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback (4-byte address family, network order).
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux netfilter NFLOG.
    pub const NFLOG: LinkType = LinkType(239);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured packet, borrowed from its source until the source advances.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// When the packet was captured.
    pub ts: Timestamp,
    /// Link type of `data`.
    pub link: LinkType,
    /// The captured bytes (possibly shorter than `orig_len`).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Interface index within the source (pcapng); 0 for pcap.
    pub interface: u32,
}

/// Where packets come from: a file, standard input, a live interface, or a merge of those.
///
/// The source owns the packet's bytes; [`PacketSource::packet`] borrows them until the next
/// [`PacketSource::advance`]. This keeps memory constant and lets [`Merge`] look at the head of
/// every input without copying.
pub trait PacketSource {
    /// Moves to the next packet. `Ok(false)` at the end of the input.
    fn advance(&mut self) -> Result<bool, CaptureError>;
    /// The packet the last successful `advance` moved to.
    fn packet(&self) -> Packet<'_>;
    /// A name for messages (the file name, `-` for stdin).
    fn name(&self) -> &str;
    /// Bytes consumed so far, for progress reporting.
    fn position(&self) -> u64;
    /// Where the current packet is: its 1-based record number and byte offset in its input.
    fn location(&self) -> (u64, u64);
}
