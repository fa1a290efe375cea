//! Builds a large capture for benchmarks by repeating real captures with shifted time and
//! addresses, so every repetition is a distinct set of conversations.
//!
//!   cargo run --release -p wiremap --example synth_capture -- OUT.pcap SIZE_MB INPUT…
//!
//! Only Ethernet inputs are used (the output is one Ethernet pcap). Addresses are rewritten
//! by XOR-ing the second and third bytes of every IPv4 address (the third and fourth of IPv6)
//! with the repetition number; checksums are left as they are (neither wiremap nor tshark
//! verifies them by default).

use std::io::BufWriter;

use wiremap_capture::{FileSource, LinkType, PacketSource, PcapWriter};
use wiremap_model::Timestamp;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, size, inputs @ ..] = args.as_slice() else {
        return Err("usage: synth_capture OUT.pcap SIZE_MB INPUT…".into());
    };
    let target: u64 = size.parse::<u64>()? << 20;
    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, file),
        LinkType::ETHERNET,
        false,
    )?;
    let mut written: u64 = 24;
    let mut base = Timestamp::from_parts(1_700_000_000, 0);
    let mut rep: u16 = 0;
    let mut frame = Vec::with_capacity(65_536);
    while written < target {
        rep = rep.wrapping_add(1);
        for path in inputs {
            let mut src = match FileSource::open(path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skipping {path}: {e}");
                    continue;
                }
            };
            let mut first: Option<Timestamp> = None;
            let mut last = base;
            while let Ok(true) = src.advance() {
                let p = src.packet();
                if p.link != LinkType::ETHERNET {
                    break;
                }
                let f = *first.get_or_insert(p.ts);
                // Long quiet stretches in some captures are squeezed to a second.
                let offset = (p.ts.nanos() - f.nanos()).clamp(0, 3_600 * 1_000_000_000);
                let ts = Timestamp(base.nanos() + offset).max(last);
                last = ts;
                frame.clear();
                frame.extend_from_slice(p.data);
                if let Some(ip) = wiremap_decode::ip_offset(1, &frame) {
                    let [lo, hi] = rep.to_le_bytes();
                    match frame.get(ip).map(|b| b >> 4) {
                        Some(4) if frame.len() >= ip + 20 => {
                            for a in [ip + 12, ip + 16] {
                                frame[a + 1] ^= lo;
                                frame[a + 2] ^= hi;
                            }
                        }
                        Some(6) if frame.len() >= ip + 40 => {
                            for a in [ip + 8, ip + 24] {
                                frame[a + 2] ^= lo;
                                frame[a + 3] ^= hi;
                            }
                        }
                        _ => {}
                    }
                }
                w.write(ts, &frame, p.orig_len)?;
                written += 16 + frame.len() as u64;
                if written >= target {
                    break;
                }
            }
            base = last.plus_secs(1);
            if written >= target {
                break;
            }
        }
    }
    w.finish()?;
    eprintln!("wrote {out}: {} MB, {rep} repetitions", written >> 20);
    Ok(())
}
