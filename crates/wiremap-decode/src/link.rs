//! Link-layer headers: find where the IP packet starts.

use crate::DecodeError;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

fn be16(d: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]))
}

/// Returns the IP packet inside a frame of `link` type, or `None` when it carries no IP.
pub(crate) fn strip(link: u32, d: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    match link {
        1 => ethernet(d),
        0 => {
            // BSD NULL: address family in the capturing host's byte order.
            let fam = d.get(..4).ok_or(DecodeError::Truncated("null"))?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            Ok(null_family(le.min(be)).then(|| &d[4..]))
        }
        108 => {
            let fam = be16(d, 2).ok_or(DecodeError::Truncated("loop"))?;
            Ok(null_family(u32::from(fam)).then(|| &d[4..]))
        }
        12 | 14 | 101 | 228 | 229 => Ok(Some(d)),
        113 => {
            let proto = be16(d, 14).ok_or(DecodeError::Truncated("sll"))?;
            Ok(by_ethertype(proto, &d[16..]))
        }
        276 => {
            let proto = be16(d, 0).ok_or(DecodeError::Truncated("sll2"))?;
            if d.len() < 20 {
                return Err(DecodeError::Truncated("sll2"));
            }
            Ok(by_ethertype(proto, &d[20..]))
        }
        239 => nflog(d),
        other => Err(DecodeError::UnsupportedLink(other)),
    }
}

fn null_family(f: u32) -> bool {
    matches!(f, 2 | 24 | 28 | 30)
}

fn by_ethertype(t: u16, rest: &[u8]) -> Option<&[u8]> {
    matches!(t, ETH_IPV4 | ETH_IPV6).then_some(rest)
}

/// Ethernet II with any number of 802.1Q / 802.1ad tags.
pub(crate) fn ethernet(d: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    let mut t = be16(d, 12).ok_or(DecodeError::Truncated("ethernet"))?;
    let mut i = 14;
    while matches!(t, 0x8100 | 0x88a8 | 0x9100) {
        t = be16(d, i + 2).ok_or(DecodeError::Truncated("vlan"))?;
        i += 4;
    }
    Ok(by_ethertype(t, &d[i..]))
}

/// NFLOG: a 4-byte header, then TLVs; the packet is in NFULA_PAYLOAD (type 9).
fn nflog(d: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    if d.len() < 4 {
        return Err(DecodeError::Truncated("nflog"));
    }
    let family = d[0];
    let mut i = 4;
    while i + 4 <= d.len() {
        // TLV length and type are in host byte order; captures come from little-endian hosts
        // in practice, but a big-endian length is recognised by its plausibility.
        let le = u16::from_le_bytes([d[i], d[i + 1]]) as usize;
        let be = u16::from_be_bytes([d[i], d[i + 1]]) as usize;
        let (len, ty) = if le >= 4 && i + le <= d.len() {
            (le, u16::from_le_bytes([d[i + 2], d[i + 3]]))
        } else {
            (be, u16::from_be_bytes([d[i + 2], d[i + 3]]))
        };
        if len < 4 || i + len > d.len() {
            return Err(DecodeError::Malformed("nflog"));
        }
        if ty & 0x7fff == 9 {
            let payload = &d[i + 4..i + len];
            return Ok(matches!(family, 2 | 10).then_some(payload));
        }
        i += len.div_ceil(4) * 4;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_a_vlan_frame_is_handled() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00, 0x45]);
        for n in 0..f.len() {
            let _ = strip(1, &f[..n]);
        }
        assert_eq!(strip(1, &f).ok().flatten(), Some(&[0x45u8][..]));
    }

    #[test]
    fn unknown_link_is_an_error() {
        assert_eq!(strip(9999, &[]), Err(DecodeError::UnsupportedLink(9999)));
    }
}
