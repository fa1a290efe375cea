//! A pcapng writer: one section, an interface per link type as it first appears, nanosecond
//! timestamps, and custom blocks that carry wiremap's resolution history.

use std::io::Write;

use wiremap_model::Timestamp;

use crate::LinkType;

/// Private enterprise number of wiremap's custom blocks (RFC 5612's documentation number).
pub const CUSTOM_PEN: u32 = 32473;
/// Block type of a copyable custom block.
pub(crate) const CUSTOM_BLOCK: u32 = 0x0000_0BAD;

/// Writes packets as a pcapng file that Wireshark and tshark open.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    links: Vec<LinkType>,
    written: u64,
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header.
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut w = PcapngWriter {
            out,
            links: Vec::new(),
            written: 0,
        };
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        w.block(0x0a0d_0d0a, &body)?;
        Ok(w)
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> std::io::Result<()> {
        let total = (12 + pad4(body.len())) as u32;
        self.out.write_all(&btype.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out
            .write_all(&[0u8; 3][..pad4(body.len()) - body.len()])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.written += u64::from(total);
        Ok(())
    }

    fn interface(&mut self, link: LinkType) -> std::io::Result<u32> {
        if let Some(i) = self.links.iter().position(|l| *l == link) {
            return Ok(i as u32);
        }
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&(link.0 as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&262_144u32.to_le_bytes());
        // if_tsresol = 9 (nanoseconds), then end of options.
        body.extend_from_slice(&9u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&[9, 0, 0, 0]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body)?;
        self.links.push(link);
        Ok(self.links.len() as u32 - 1)
    }

    /// Writes one packet.
    pub fn write(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> std::io::Result<()> {
        let iface = self.interface(link)?;
        let t = ts.nanos() as u64;
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(&iface.to_le_bytes());
        head[4..8].copy_from_slice(&((t >> 32) as u32).to_le_bytes());
        head[8..12].copy_from_slice(&(t as u32).to_le_bytes());
        head[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        head[16..20].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        let body_len = 20 + pad4(data.len());
        let total = (12 + body_len) as u32;
        self.out.write_all(&6u32.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.out
            .write_all(&[0u8; 3][..pad4(data.len()) - data.len()])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.written += u64::from(total);
        Ok(())
    }

    /// Writes a wiremap custom block (copied along by tools that edit the file).
    pub fn custom(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut body = Vec::with_capacity(4 + payload.len());
        body.extend_from_slice(&CUSTOM_PEN.to_le_bytes());
        body.extend_from_slice(payload);
        self.block(CUSTOM_BLOCK, &body)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer (for flushing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileSource, PacketSource};

    #[test]
    fn packets_and_custom_blocks_read_back() {
        let mut w = PcapngWriter::new(Vec::new()).expect("header");
        w.custom(b"history").expect("custom");
        w.write(
            Timestamp::from_parts(1_700_000_000, 123_456_789),
            LinkType::ETHERNET,
            b"abcde",
            60,
        )
        .expect("write");
        w.write(
            Timestamp::from_parts(1_700_000_001, 5),
            LinkType::RAW,
            b"xy",
            2,
        )
        .expect("write");
        let bytes = w.finish().expect("finish");
        let mut r = FileSource::new("mem", Box::new(std::io::Cursor::new(bytes))).expect("open");
        assert!(r.advance().expect("first"));
        // Blocks are padded to four bytes.
        assert_eq!(r.custom_blocks(), vec![b"history\0".to_vec()]);
        let p = r.packet();
        assert_eq!(
            (p.ts, p.link, p.data, p.orig_len),
            (
                Timestamp::from_parts(1_700_000_000, 123_456_789),
                LinkType::ETHERNET,
                &b"abcde"[..],
                60
            )
        );
        assert!(r.advance().expect("second"));
        assert_eq!(
            (r.packet().link, r.packet().data),
            (LinkType::RAW, &b"xy"[..])
        );
        assert!(!r.advance().expect("end"));
    }

    #[test]
    fn a_block_whose_trailing_length_disagrees_is_refused() {
        let mut w = PcapngWriter::new(Vec::new()).expect("header");
        w.write(Timestamp::from_parts(1, 0), LinkType::RAW, b"abcd", 4)
            .expect("write");
        let mut bytes = w.finish().expect("finish");
        // The last block is the packet; its trailing length is the file's last four bytes.
        let n = bytes.len();
        bytes[n - 4] ^= 0x04;
        let mut r = FileSource::new("mem", Box::new(std::io::Cursor::new(bytes))).expect("open");
        let e = r.advance().expect_err("refused");
        assert!(e.to_string().contains("trailing block length"), "{e}");
    }
}
