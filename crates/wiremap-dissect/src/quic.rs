//! QUIC Initial packets: their keys derive from the connection id in the clear (RFC 9001
//! §5.2), so the TLS ClientHello inside is readable by any observer. wiremap decrypts the
//! client's Initials, reassembles the CRYPTO stream and reports the ClientHello (SNI, ALPN)
//! as a `tls` entry over UDP; the rest of the connection is only counted.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use wiremap_model::{Detail, Direction, DropReason, Protocol, Timestamp, TlsInfo, Transport};

use crate::tls::{parse_client_hello, version_name, ClientHello};
use crate::{Cx, DissectConfig, Dissector, Next, Probe, Verdict};

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Largest CRYPTO stream reassembled for one ClientHello.
const MAX_CRYPTO: usize = 64 * 1024;

fn varint(d: &[u8], p: &mut usize) -> Option<u64> {
    let first = *d.get(*p)?;
    let len = 1usize << (first >> 6);
    let bytes = d.get(*p..*p + len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    *p += len;
    Some(v)
}

fn expand_label(secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let hk = Hkdf::<Sha256>::from_prk(secret).ok()?;
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    let mut out = vec![0u8; len];
    hk.expand(&info, &mut out).ok()?;
    Some(out)
}

struct Keys {
    key: Vec<u8>,
    iv: Vec<u8>,
    hp: Vec<u8>,
}

fn client_keys(version: u32, dcid: &[u8]) -> Option<Keys> {
    let (salt, prefix) = match version {
        V1 => (&SALT_V1, "quic"),
        V2 => (&SALT_V2, "quicv2"),
        _ => return None,
    };
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let secret = expand_label(&prk, "client in", 32)?;
    Some(Keys {
        key: expand_label(&secret, &format!("{prefix} key"), 16)?,
        iv: expand_label(&secret, &format!("{prefix} iv"), 12)?,
        hp: expand_label(&secret, &format!("{prefix} hp"), 16)?,
    })
}

/// Decrypts every client Initial packet in a datagram; returns the CRYPTO frames found
/// (offset, data).
pub fn initial_crypto_frames(datagram: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut d = datagram;
    let mut any = false;
    while d.len() > 7 && d[0] & 0xc0 == 0xc0 {
        let version = u32::from_be_bytes([d[1], d[2], d[3], d[4]]);
        let ptype = (d[0] >> 4) & 0x03;
        let initial = match version {
            V1 => ptype == 0,
            V2 => ptype == 1,
            _ => return if any { Some(out) } else { None },
        };
        let mut p = 5;
        let dcid_len = usize::from(*d.get(p)?);
        let dcid = d.get(p + 1..p + 1 + dcid_len)?.to_vec();
        p += 1 + dcid_len;
        let scid_len = usize::from(*d.get(p)?);
        p += 1 + scid_len;
        if initial {
            let tok = varint(d, &mut p)? as usize;
            p += tok;
        }
        let len = varint(d, &mut p)? as usize;
        let end = p.checked_add(len)?;
        if end > d.len() || len < 20 {
            return None;
        }
        if initial {
            let keys = client_keys(version, &dcid)?;
            let mut pkt = d[..end].to_vec();
            let sample: [u8; 16] = pkt.get(p + 4..p + 20)?.try_into().ok()?;
            let hp = aes::Aes128::new_from_slice(&keys.hp).ok()?;
            let mut block = aes::Block::from(sample);
            hp.encrypt_block(&mut block);
            pkt[0] ^= block[0] & 0x0f;
            let pn_len = usize::from(pkt[0] & 0x03) + 1;
            let mut pn: u64 = 0;
            for i in 0..pn_len {
                pkt[p + i] ^= block[1 + i];
                pn = (pn << 8) | u64::from(pkt[p + i]);
            }
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&keys.iv);
            for (i, b) in pn.to_be_bytes().iter().enumerate() {
                nonce[4 + i] ^= b;
            }
            let aead = Aes128Gcm::new_from_slice(&keys.key).ok()?;
            let (aad, body) = pkt.split_at(p + pn_len);
            let plain = aead
                .decrypt(Nonce::from_slice(&nonce), Payload { msg: body, aad })
                .ok()?;
            any = true;
            frames(&plain, &mut out)?;
        }
        d = &d[end..];
    }
    any.then_some(out)
}

fn frames(d: &[u8], out: &mut Vec<(u64, Vec<u8>)>) -> Option<()> {
    let mut p = 0;
    while p < d.len() {
        let ty = varint(d, &mut p)?;
        match ty {
            0x00 | 0x01 => {}
            0x02 | 0x03 => {
                varint(d, &mut p)?;
                varint(d, &mut p)?;
                let ranges = varint(d, &mut p)?;
                varint(d, &mut p)?;
                for _ in 0..ranges.min(1024) {
                    varint(d, &mut p)?;
                    varint(d, &mut p)?;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        varint(d, &mut p)?;
                    }
                }
            }
            0x06 => {
                let off = varint(d, &mut p)?;
                let len = varint(d, &mut p)? as usize;
                out.push((off, d.get(p..p + len)?.to_vec()));
                p += len;
            }
            0x1c | 0x1d => {
                // CONNECTION_CLOSE: the rest of the packet is its payload.
                return Some(());
            }
            _ => return Some(()),
        }
    }
    Some(())
}

/// QUIC v1/v2 client Initial carrying a ClientHello.
#[derive(Debug)]
pub struct QuicProbe;

impl Probe for QuicProbe {
    fn name(&self) -> &'static str {
        "quic"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn probe(&self, _dir: Direction, data: &[u8]) -> Verdict {
        match initial_crypto_frames(data) {
            Some(f) if f.iter().any(|(off, _)| *off == 0) => Verdict::Yes,
            Some(f) if !f.is_empty() => Verdict::Yes,
            _ => Verdict::No,
        }
    }
    fn build(&self, _cfg: &DissectConfig) -> Box<dyn Dissector> {
        Box::new(Quic::default())
    }
}

/// The QUIC dissector of one UDP flow.
#[derive(Debug, Default)]
pub struct Quic {
    client: Option<Direction>,
    first_ts: Option<Timestamp>,
    reply_ts: Option<Timestamp>,
    crypto: Vec<(u64, Vec<u8>)>,
    hello: Option<ClientHello>,
    bytes: [u64; 2],
}

impl Quic {
    fn try_hello(&mut self) {
        if self.hello.is_some() {
            return;
        }
        self.crypto.sort_by_key(|(o, _)| *o);
        let mut stream = Vec::new();
        for (off, data) in &self.crypto {
            let off = *off as usize;
            if off > stream.len() {
                break;
            }
            let skip = stream.len() - off;
            if skip < data.len() {
                stream.extend_from_slice(&data[skip..]);
            }
        }
        if stream.len() < 4 || stream[0] != 1 {
            return;
        }
        let len =
            (usize::from(stream[1]) << 16) | (usize::from(stream[2]) << 8) | usize::from(stream[3]);
        if stream.len() >= 4 + len {
            self.hello = parse_client_hello(&stream[4..4 + len]);
            self.crypto.clear();
        }
    }
}

impl Dissector for Quic {
    fn held(&self) -> usize {
        self.crypto.iter().map(|(_, c)| c.capacity()).sum()
    }
    fn data(&mut self, cx: &mut Cx<'_>, dir: Direction, ts: Timestamp, data: &[u8]) -> Next {
        self.bytes[dir.index()] += data.len() as u64;
        if self.client.is_some_and(|c| c != dir) {
            self.reply_ts.get_or_insert(ts);
            return Next::Continue;
        }
        if self.hello.is_some() {
            return Next::Continue;
        }
        match initial_crypto_frames(data) {
            Some(frames) if !frames.is_empty() => {
                self.client.get_or_insert(dir);
                self.first_ts.get_or_insert(ts);
                let held: usize = self.crypto.iter().map(|(_, d)| d.len()).sum();
                if held < MAX_CRYPTO {
                    self.crypto.extend(frames);
                }
                self.try_hello();
            }
            Some(_) => {}
            None => {
                if self.client.is_none() {
                    cx.stats.event(DropReason::QuicUndecryptable);
                }
            }
        }
        Next::Continue
    }

    fn gap(&mut self, _cx: &mut Cx<'_>, _dir: Direction, _ts: Timestamp, _len: u64) {}

    fn close(&mut self, cx: &mut Cx<'_>, _ts: Timestamp) {
        let Some(client) = self.client else {
            return;
        };
        let ch = self.hello.take().unwrap_or_default();
        let detail = TlsInfo {
            sni: ch.sni,
            alpn: ch.alpn,
            client_version: version_name(ch.version),
            ..TlsInfo::default()
        };
        let ts = self.first_ts.unwrap_or(cx.info.first_ts);
        let (req, resp) = (
            self.bytes[client.index()],
            self.bytes[client.flip().index()],
        );
        cx.emit(
            client,
            Protocol::Tls,
            ts,
            self.reply_ts,
            req,
            resp,
            0,
            false,
            Detail::Tls(Box::new(detail)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A.1: the client's keys for DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_client_initial_keys() {
        let k = client_keys(V1, &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]).expect("keys");
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(&k.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&k.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&k.hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    #[test]
    fn garbage_is_not_quic() {
        for n in 0..64 {
            let d: Vec<u8> = (0..n).map(|i| (i * 37 + 0xc1) as u8).collect();
            assert!(initial_crypto_frames(&d).is_none() || n > 7);
        }
    }
}
