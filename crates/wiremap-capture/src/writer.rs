//! A classic pcap writer (microsecond or nanosecond timestamps).

use std::io::Write;

use wiremap_model::Timestamp;

use crate::LinkType;

/// Writes packets as a classic pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W, link: LinkType, nanos: bool) -> std::io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.write_all(&magic.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&link.0.to_le_bytes())?;
        Ok(PcapWriter { out, nanos })
    }

    /// Writes one packet.
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> std::io::Result<()> {
        let secs = ts.nanos().div_euclid(1_000_000_000);
        let frac = ts.nanos().rem_euclid(1_000_000_000);
        let frac = if self.nanos { frac } else { frac / 1000 };
        self.out.write_all(&(secs as u32).to_le_bytes())?;
        self.out.write_all(&(frac as u32).to_le_bytes())?;
        self.out.write_all(&(data.len() as u32).to_le_bytes())?;
        self.out
            .write_all(&orig_len.max(data.len() as u32).to_le_bytes())?;
        self.out.write_all(data)
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
    fn written_packets_read_back() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET, true).expect("header");
        w.write(
            Timestamp::from_parts(1_700_000_000, 123_456_789),
            b"abc",
            60,
        )
        .expect("write");
        w.write(Timestamp::from_parts(1_700_000_001, 5), b"defg", 4)
            .expect("write");
        let bytes = w.finish().expect("finish");
        let mut r = FileSource::new("mem", Box::new(std::io::Cursor::new(bytes))).expect("open");
        assert!(r.advance().expect("first"));
        let p = r.packet();
        assert_eq!(
            (p.ts, p.data, p.orig_len),
            (
                Timestamp::from_parts(1_700_000_000, 123_456_789),
                &b"abc"[..],
                60
            )
        );
        assert!(r.advance().expect("second"));
        assert_eq!(r.packet().data, b"defg");
        assert!(!r.advance().expect("end"));
    }
}
