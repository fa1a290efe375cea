use std::io::Read;

use wiremap_model::Timestamp;

use crate::{CaptureError, LinkType, Packet, PacketSource};

/// Bytes read from the input at a time.
const READ_AHEAD: usize = 4 << 20;

/// Largest record or block accepted. Real snapshot lengths stop at 256 KiB; pcapng blocks
/// carry options too, and GSO/TSO frames captured on Linux can reach 64 KiB + headers.
const MAX_BLOCK: u32 = 16 << 20;
/// Bytes of custom blocks kept per input.
const MAX_CUSTOM: usize = 256 << 20;
const MAX_RECORD: u32 = 1 << 20;

/// The container format of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

enum Block {
    Packet,
    Other,
    End,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

/// A pcap or pcapng capture read from any byte stream, one record at a time.
pub struct FileSource {
    name: String,
    reader: Box<dyn Read + Send>,
    /// Chunks read ahead on another thread, used in place (files and stdin).
    ahead: Option<crate::ReadAhead>,
    format: FileFormat,
    big_endian: bool,
    /// pcap: nanosecond timestamps.
    nanos: bool,
    /// pcap: link type and snaplen of the whole file.
    pcap_link: LinkType,
    interfaces: Vec<Interface>,
    /// Bytes read ahead; the current record starts at `pos` and is `rec_len` long.
    store: Vec<u8>,
    pos: usize,
    rec_len: usize,
    filled: usize,
    eof: bool,
    data_start: usize,
    data_len: usize,
    current: (Timestamp, LinkType, u32, u32),
    offset: u64,
    records: u64,
    /// Record number and offset of the current packet.
    here: (u64, u64),
    /// An error ended this input.
    failed: bool,
    /// wiremap custom blocks read so far (resolution history).
    custom: Vec<Vec<u8>>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("offset", &self.offset)
            .finish()
    }
}

impl FileSource {
    /// Opens a capture on `reader`, reading and checking its file header.
    pub fn new(
        name: impl Into<String>,
        reader: Box<dyn Read + Send>,
    ) -> Result<Self, CaptureError> {
        let mut src = FileSource::new_with(name.into(), reader, None)?;
        src.read_file_header()?;
        Ok(src)
    }

    fn new_with(
        name: String,
        reader: Box<dyn Read + Send>,
        ahead: Option<crate::ReadAhead>,
    ) -> Result<Self, CaptureError> {
        let store = if ahead.is_some() {
            Vec::new()
        } else {
            vec![0; READ_AHEAD]
        };
        Ok(FileSource {
            name,
            reader,
            ahead,
            format: FileFormat::Pcap,
            big_endian: false,
            nanos: false,
            pcap_link: LinkType::ETHERNET,
            interfaces: Vec::new(),
            store,
            pos: 0,
            rec_len: 0,
            filled: 0,
            eof: false,
            data_start: 0,
            data_len: 0,
            current: (Timestamp(0), LinkType::ETHERNET, 0, 0),
            offset: 0,
            records: 0,
            here: (0, 0),
            failed: false,
            custom: Vec::new(),
        })
    }

    /// Opens the file at `path` (`-` is standard input).
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let reader: Box<dyn Read + Send> = if path == "-" {
            Box::new(std::io::stdin())
        } else {
            let f = std::fs::File::open(path).map_err(|source| CaptureError::Io {
                name: path.to_string(),
                source,
            })?;
            Box::new(f)
        };
        // Reads happen on a second thread, chunks ahead of the parser, and are parsed where
        // they landed.
        let name = path.to_string();
        let mut src = FileSource::new_with(
            name,
            Box::new(std::io::empty()),
            Some(crate::ReadAhead::new(reader)),
        )?;
        src.read_file_header()?;
        Ok(src)
    }

    /// Takes the wiremap custom blocks read so far (they precede the packets they describe).
    pub fn custom_blocks(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.custom)
    }

    /// The container format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The current record's bytes read so far.
    fn buf(&self) -> &[u8] {
        &self.store[self.pos..self.pos + self.rec_len]
    }

    /// Makes `n` more bytes of the current record, from `at`, available (fewer at the end
    /// of the input); returns how many are. `at == 0` starts a new record. Reads go straight
    /// into one large read-ahead buffer that packets are borrowed from: no copy per packet.
    fn fill(&mut self, at: usize, n: usize) -> Result<usize, CaptureError> {
        if at == 0 {
            self.pos += self.rec_len;
            self.rec_len = 0;
        }
        if self.ahead.is_some() {
            return self.fill_chunks(at, n);
        }
        let want = self.pos + at + n;
        if want > self.store.len() {
            // Move the unread tail to the front, growing the buffer for a huge record.
            self.store.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
            let need = at + n;
            if need > self.store.len() {
                self.store.resize(need.next_power_of_two(), 0);
            }
        }
        let want = self.pos + at + n;
        while self.filled < want && !self.eof {
            match self.reader.read(&mut self.store[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.io_error(source)),
            }
        }
        let got = n.min(self.filled.saturating_sub(self.pos + at));
        self.rec_len = at + got;
        Ok(got)
    }

    /// `fill` for chunks read ahead: each new chunk becomes the buffer, with the unread end
    /// of the old one copied into the room in front of its data (no copy of the chunk).
    fn fill_chunks(&mut self, at: usize, n: usize) -> Result<usize, CaptureError> {
        // Positions move when the buffer is swapped: the target is recomputed each time.
        while self.filled < self.pos + at + n && !self.eof {
            let Some(ahead) = self.ahead.as_mut() else {
                break;
            };
            match ahead.next_chunk() {
                Ok(None) => self.eof = true,
                Ok(Some(mut chunk)) => {
                    let tail = self.filled - self.pos;
                    if tail <= crate::readahead::HEAD {
                        let start = crate::readahead::HEAD - tail;
                        chunk[start..crate::readahead::HEAD]
                            .copy_from_slice(&self.store[self.pos..self.filled]);
                        let old = std::mem::replace(&mut self.store, chunk);
                        ahead.recycle(old);
                        self.pos = start;
                    } else {
                        // A record longer than the room: grow the current buffer instead.
                        self.store.truncate(self.filled);
                        self.store
                            .extend_from_slice(&chunk[crate::readahead::HEAD..]);
                        ahead.recycle(chunk);
                    }
                    self.filled = self.store.len();
                }
                Err(source) => return Err(self.io_error(source)),
            }
        }
        let got = n.min(self.filled.saturating_sub(self.pos + at));
        self.rec_len = at + got;
        Ok(got)
    }

    fn io_error(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Io {
            name: self.name.clone(),
            source,
        }
    }

    fn truncated(&self, what: &'static str, needed: u64, available: u64) -> CaptureError {
        CaptureError::Truncated {
            name: self.name.clone(),
            what,
            record: self.records + 1,
            offset: self.offset,
            needed,
            available,
        }
    }

    fn malformed(&self, what: &'static str, reason: String) -> CaptureError {
        CaptureError::Malformed {
            name: self.name.clone(),
            what,
            record: self.records + 1,
            offset: self.offset,
            reason,
        }
    }

    fn u16_at(&self, i: usize) -> u16 {
        let d = self.buf();
        let b = [d[i], d[i + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, i: usize) -> u32 {
        let d = self.buf();
        let b = [d[i], d[i + 1], d[i + 2], d[i + 3]];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        let got = self.fill(0, 4)?;
        if got == 0 {
            return Err(CaptureError::Empty {
                name: self.name.clone(),
            });
        }
        let magic = [
            *self.buf().first().unwrap_or(&0),
            *self.buf().get(1).unwrap_or(&0),
            *self.buf().get(2).unwrap_or(&0),
            *self.buf().get(3).unwrap_or(&0),
        ];
        let (format, big, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (FileFormat::Pcap, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (FileFormat::Pcap, true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (FileFormat::Pcap, false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (FileFormat::Pcap, true, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => (FileFormat::Pcapng, false, false),
            _ => {
                return Err(CaptureError::BadMagic {
                    name: self.name.clone(),
                    magic: self.buf().to_vec(),
                })
            }
        };
        if got < 4 {
            return Err(self.truncated("file header", 24, got as u64));
        }
        self.format = format;
        self.big_endian = big;
        self.nanos = nanos;
        match format {
            FileFormat::Pcap => {
                let got = self.fill(4, 20)?;
                if got < 20 {
                    return Err(self.truncated("file header", 24, 4 + got as u64));
                }
                let major = self.u16_at(4);
                if major != 2 {
                    return Err(
                        self.malformed("file header", format!("pcap version {major}, expected 2"))
                    );
                }
                self.pcap_link = LinkType(self.u32_at(20) & 0x0fff_ffff);
                self.offset = 24;
                Ok(())
            }
            FileFormat::Pcapng => {
                // The section header block is read as an ordinary block by `advance`, which
                // needs the block type already consumed: keep the 4 bytes and mark it.
                self.read_pcapng_block(true).map(|_| ())
            }
        }
    }

    /// Reads one pcapng block.
    fn read_pcapng_block(&mut self, have_type: bool) -> Result<Block, CaptureError> {
        let start = if have_type { 4 } else { 0 };
        let got = self.fill(start, 8 - start)?;
        if got == 0 && !have_type {
            return Ok(Block::End);
        }
        if got < 8 - start {
            return Err(self.truncated("block header", 12, (start + got) as u64));
        }
        let d = self.buf();
        let raw_type = [d[0], d[1], d[2], d[3]];
        if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
            // Section header: its byte-order magic decides how to read the length.
            let got = self.fill(8, 4)?;
            if got < 4 {
                return Err(self.truncated("section header", 28, 8 + got as u64));
            }
            let d = self.buf();
            self.big_endian = match [d[8], d[9], d[10], d[11]] {
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                other => {
                    return Err(
                        self.malformed("section header", format!("byte-order magic {other:02x?}"))
                    )
                }
            };
            self.interfaces.clear();
            let len = self.u32_at(4);
            self.check_block_len(len, 28)?;
            let got = self.fill(12, len as usize - 12)?;
            if got < len as usize - 12 {
                return Err(self.truncated("section header", u64::from(len), 12 + got as u64));
            }
            self.check_trailing_len(len)?;
            self.offset += u64::from(len);
            return Ok(Block::Other);
        }
        let btype = self.u32_at(0);
        let len = self.u32_at(4);
        self.check_block_len(len, 12)?;
        let got = self.fill(8, len as usize - 8)?;
        if got < len as usize - 8 {
            return Err(self.truncated("block", u64::from(len), 8 + got as u64));
        }
        self.check_trailing_len(len)?;
        let body_end = len as usize - 4;
        let is_packet = match btype {
            1 => {
                self.parse_idb(body_end)?;
                false
            }
            6 => {
                self.parse_epb(body_end)?;
                true
            }
            3 => {
                self.parse_spb(body_end)?;
                true
            }
            2 => {
                self.parse_pb(body_end)?;
                true
            }
            crate::pcapng_writer::CUSTOM_BLOCK | 0x4000_0BAD if body_end >= 12 => {
                if self.u32_at(8) == crate::pcapng_writer::CUSTOM_PEN
                    && self.custom.iter().map(Vec::len).sum::<usize>() < MAX_CUSTOM
                {
                    let block = self.buf()[12..body_end].to_vec();
                    self.custom.push(block);
                }
                false
            }
            _ => false,
        };
        self.offset += u64::from(len);
        Ok(if is_packet {
            Block::Packet
        } else {
            Block::Other
        })
    }

    /// A block repeats its length at its end: one that disagrees is not a block boundary
    /// (damage, or bytes that only look like a block).
    fn check_trailing_len(&self, len: u32) -> Result<(), CaptureError> {
        let trailing = self.u32_at(len as usize - 4);
        if trailing != len {
            return Err(self.malformed(
                "block",
                format!("trailing block length {trailing} differs from the leading {len}"),
            ));
        }
        Ok(())
    }

    fn check_block_len(&self, len: u32, min: u32) -> Result<(), CaptureError> {
        if len < min || !len.is_multiple_of(4) || len > MAX_BLOCK {
            return Err(self.malformed("block", format!("block length {len}")));
        }
        Ok(())
    }

    fn parse_idb(&mut self, body_end: usize) -> Result<(), CaptureError> {
        if body_end < 16 {
            return Err(self.malformed("interface description", "too short".into()));
        }
        let link = LinkType(u32::from(self.u16_at(8)));
        let snaplen = self.u32_at(12);
        let mut iface = Interface {
            link,
            snaplen,
            units: 1_000_000,
            offset: 0,
        };
        let mut i = 16;
        while i + 4 <= body_end {
            let code = self.u16_at(i);
            let olen = self.u16_at(i + 2) as usize;
            let v = i + 4;
            if code == 0 || v + olen > body_end {
                break;
            }
            match (code, olen) {
                (9, 1) => {
                    let r = self.buf()[v];
                    let exp = u32::from(r & 0x7f);
                    iface.units = if r & 0x80 != 0 {
                        if exp > 63 {
                            return Err(self
                                .malformed("interface description", format!("if_tsresol {r:#x}")));
                        }
                        1u64 << exp
                    } else {
                        if exp > 18 {
                            return Err(self
                                .malformed("interface description", format!("if_tsresol {r:#x}")));
                        }
                        10u64.pow(exp)
                    };
                }
                (14, 8) => {
                    let lo = u64::from(self.u32_at(v));
                    let hi = u64::from(self.u32_at(v + 4));
                    iface.offset = if self.big_endian {
                        (lo << 32) | hi
                    } else {
                        (hi << 32) | lo
                    } as i64;
                }
                _ => {}
            }
            i = v + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(iface);
        Ok(())
    }

    fn interface(&self, id: u32) -> Result<Interface, CaptureError> {
        self.interfaces
            .get(id as usize)
            .copied()
            .ok_or_else(|| self.malformed("packet block", format!("interface {id} not described")))
    }

    fn set_packet(
        &mut self,
        iface: Interface,
        id: u32,
        ticks: u64,
        start: usize,
        (caplen, orig): (u32, u32),
        body_end: usize,
    ) -> Result<(), CaptureError> {
        if caplen > MAX_RECORD || start + caplen as usize > body_end {
            return Err(self.malformed(
                "packet block",
                format!(
                    "captured length {caplen} exceeds the block ({} bytes left)",
                    body_end.saturating_sub(start)
                ),
            ));
        }
        let secs = (ticks / iface.units) as i64 + iface.offset;
        let frac = ticks % iface.units;
        let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(iface.units)) as u32;
        self.data_start = start;
        self.data_len = caplen as usize;
        self.current = (
            Timestamp::from_parts(secs, nanos),
            iface.link,
            orig.max(caplen),
            id,
        );
        Ok(())
    }

    fn parse_epb(&mut self, body_end: usize) -> Result<(), CaptureError> {
        if body_end < 28 {
            return Err(self.malformed("enhanced packet block", "too short".into()));
        }
        let id = self.u32_at(8);
        let iface = self.interface(id)?;
        let ticks = (u64::from(self.u32_at(12)) << 32) | u64::from(self.u32_at(16));
        let caplen = self.u32_at(20);
        let orig = self.u32_at(24);
        self.set_packet(iface, id, ticks, 28, (caplen, orig), body_end)
    }

    fn parse_pb(&mut self, body_end: usize) -> Result<(), CaptureError> {
        if body_end < 28 {
            return Err(self.malformed("packet block", "too short".into()));
        }
        let id = u32::from(self.u16_at(8));
        let iface = self.interface(id)?;
        let ticks = (u64::from(self.u32_at(12)) << 32) | u64::from(self.u32_at(16));
        let caplen = self.u32_at(20);
        let orig = self.u32_at(24);
        self.set_packet(iface, id, ticks, 28, (caplen, orig), body_end)
    }

    fn parse_spb(&mut self, body_end: usize) -> Result<(), CaptureError> {
        if body_end < 12 {
            return Err(self.malformed("simple packet block", "too short".into()));
        }
        let iface = self.interface(0)?;
        let orig = self.u32_at(8);
        let mut caplen = orig.min((body_end - 12) as u32);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        self.data_start = 12;
        self.data_len = caplen as usize;
        self.current = (self.current.0, iface.link, orig, 0);
        Ok(())
    }

    fn advance_pcap(&mut self) -> Result<bool, CaptureError> {
        let got = self.fill(0, 16)?;
        if got == 0 {
            return Ok(false);
        }
        if got < 16 {
            return Err(self.truncated("record header", 16, got as u64));
        }
        let mut h = [0u8; 16];
        h.copy_from_slice(&self.buf()[..16]);
        let word = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, caplen, orig) = (word(0), word(4), word(8), word(12));
        if caplen > MAX_RECORD {
            return Err(self.malformed(
                "record header",
                format!("captured length {caplen} is impossible"),
            ));
        }
        let nanos = if self.nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        if nanos >= 1_000_000_000 {
            return Err(self.malformed(
                "record header",
                format!("sub-second field {frac} out of range"),
            ));
        }
        let got = self.fill(16, caplen as usize)?;
        if got < caplen as usize {
            return Err(self.truncated("record data", 16 + u64::from(caplen), 16 + got as u64));
        }
        self.data_start = 16;
        self.data_len = caplen as usize;
        self.current = (
            Timestamp::from_parts(i64::from(secs), nanos),
            self.pcap_link,
            orig.max(caplen),
            0,
        );
        self.here = (self.records + 1, self.offset);
        self.offset += 16 + u64::from(caplen);
        self.records += 1;
        Ok(true)
    }
}

impl FileSource {
    fn advance_inner(&mut self) -> Result<bool, CaptureError> {
        match self.format {
            FileFormat::Pcap => self.advance_pcap(),
            FileFormat::Pcapng => loop {
                let start = self.offset;
                match self.read_pcapng_block(false)? {
                    Block::Packet => {
                        self.here = (self.records + 1, start);
                        self.records += 1;
                        return Ok(true);
                    }
                    Block::Other => self.records += 1,
                    Block::End => return Ok(false),
                }
            },
        }
    }
}

impl PacketSource for FileSource {
    fn advance(&mut self) -> Result<bool, CaptureError> {
        // After an error the input's framing is lost: it ends there, once.
        if self.failed {
            return Ok(false);
        }
        let r = self.advance_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }
    fn packet(&self) -> Packet<'_> {
        let (ts, link, orig_len, interface) = self.current;
        let rec = self.buf();
        let end = (self.data_start + self.data_len).min(rec.len());
        Packet {
            ts,
            link,
            data: rec.get(self.data_start..end).unwrap_or(&[]),
            orig_len,
            interface,
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> u64 {
        self.offset
    }

    fn location(&self) -> (u64, u64) {
        self.here
    }
}
