use thiserror::Error;

/// The first bytes of a file, in hex and, when they are text, as text (`23 20 77 69 "# wi"`).
fn show_magic(b: &[u8]) -> String {
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    let hex = hex.join(" ");
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{hex} (\"{}\")", String::from_utf8_lossy(b))
    } else {
        hex
    }
}

/// Why a packet source stopped.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// Reading the underlying file or stream failed.
    #[error("{name}: cannot read: {source}")]
    Io {
        /// Source name.
        name: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input holds no bytes at all.
    #[error("{name}: empty file (0 bytes), not a pcap or pcapng capture")]
    Empty {
        /// Source name.
        name: String,
    },
    /// The first bytes are not a pcap or pcapng magic number.
    #[error(
        "{name}: not a pcap or pcapng capture: it starts with {} (pcap files start with \
         d4 c3 b2 a1 or a1 b2 c3 d4, or 4d 3c b2 a1 / a1 b2 3c 4d for nanoseconds; pcapng \
         files with 0a 0d 0d 0a)",
        show_magic(magic)
    )]
    BadMagic {
        /// Source name.
        name: String,
        /// The first bytes found.
        magic: Vec<u8>,
    },
    /// The input ends in the middle of a header or record.
    #[error("{name}: truncated {what} at record {record}, offset {offset}: need {needed} bytes, {available} present")]
    Truncated {
        /// Source name.
        name: String,
        /// What was being read (`file header`, `record header`, `record data`, `block`).
        what: &'static str,
        /// 1-based number of the record being read.
        record: u64,
        /// Byte offset of the record's start.
        offset: u64,
        /// Bytes the record needs.
        needed: u64,
        /// Bytes the input still had.
        available: u64,
    },
    /// The capture's link type is not one wiremap decodes.
    #[error("{name}: unsupported link type {link} at record {record}, offset {offset}")]
    UnsupportedLink {
        /// Source name.
        name: String,
        /// The link type number.
        link: u32,
        /// 1-based record number.
        record: u64,
        /// Byte offset of the record's start.
        offset: u64,
    },
    /// A record or block is malformed (impossible length, unknown interface, …).
    #[error("{name}: bad {what} at record {record}, offset {offset}: {reason}")]
    Malformed {
        /// Source name.
        name: String,
        /// What was being read.
        what: &'static str,
        /// 1-based record number.
        record: u64,
        /// Byte offset of the record's start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl CaptureError {
    /// True when the input simply stopped short after at least one good record: the packets
    /// before it are sound and worth using.
    pub fn is_truncated_tail(&self) -> bool {
        matches!(self, CaptureError::Truncated { record, .. } if *record > 1)
    }
}
