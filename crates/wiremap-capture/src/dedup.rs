//! The same packet crossing two captured interfaces (a pod's veth and the bridge behind it)
//! is delivered once: [`Dedup`] drops a packet whose IP content (hop count and checksum
//! aside) was seen on another interface within [`DEDUP_WINDOW_NS`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use wiremap_model::Timestamp;

use crate::LinkType;

/// How long a packet seen on one interface masks the same packet on another.
pub const DEDUP_WINDOW_NS: i64 = 50_000_000;

/// Drops the copy of a packet that crossed two captured interfaces.
#[derive(Debug)]
pub struct Dedup {
    seen: HashMap<u64, (Timestamp, u32)>,
    last_sweep: i64,
    window: i64,
    /// Copies dropped.
    pub dropped: u64,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup::with_window(DEDUP_WINDOW_NS)
    }
}

fn ip_start(link: LinkType, data: &[u8]) -> Option<usize> {
    if link == LinkType::ETHERNET {
        let mut at = 12;
        let mut et = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
        while et == 0x8100 || et == 0x88a8 {
            at += 4;
            et = u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]);
        }
        (et == 0x0800 || et == 0x86dd).then_some(at + 2)
    } else {
        Some(0)
    }
}

impl Dedup {
    /// Copies masked within `window_ns` of each other (wider than [`DEDUP_WINDOW_NS`] where the
    /// copies come from machines whose clocks differ, as agents on different nodes).
    pub fn with_window(window_ns: i64) -> Self {
        Dedup {
            seen: HashMap::new(),
            last_sweep: 0,
            window: window_ns.max(1),
            dropped: 0,
        }
    }

    /// Whether this packet, seen on `iface`, is a copy of one seen on another interface.
    pub fn is_copy(&mut self, ts: Timestamp, iface: u32, link: LinkType, data: &[u8]) -> bool {
        let Some(ip) = ip_start(link, data) else {
            return false;
        };
        let Some(pkt) = data.get(ip..) else {
            return false;
        };
        let mut h = rustc_hash::FxHasher::default();
        match pkt.first().map(|v| v >> 4) {
            // IPv4 without TTL (8) and header checksum (10..12), which routing changes.
            Some(4) if pkt.len() >= 20 => {
                pkt[..8].hash(&mut h);
                pkt[9..10].hash(&mut h);
                pkt[12..].hash(&mut h);
            }
            // IPv6 without the hop limit (7).
            Some(6) if pkt.len() >= 40 => {
                pkt[..7].hash(&mut h);
                pkt[8..].hash(&mut h);
            }
            _ => return false,
        }
        let key = h.finish();
        let window = self.window;
        if ts.0 - self.last_sweep > window * 4 {
            self.seen.retain(|_, (t, _)| ts.0 - t.0 <= window);
            self.last_sweep = ts.0;
        }
        match self.seen.get(&key) {
            Some((t, i)) if *i != iface && (ts.0 - t.0).abs() <= window => {
                self.dropped += 1;
                true
            }
            _ => {
                self.seen.insert(key, (ts, iface));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_drops_a_routed_copy_from_another_interface_only() {
        let mut ip = vec![0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0xaa, 0xbb];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0]);
        let mut routed = ip.clone();
        routed[8] = 63;
        routed[10] = 0x12;
        let mut d = Dedup::default();
        let t = Timestamp(1_000);
        assert!(!d.is_copy(t, 0, LinkType::RAW, &ip));
        assert!(d.is_copy(Timestamp(2_000), 1, LinkType::RAW, &routed));
        // Same interface again: a retransmission, kept.
        assert!(!d.is_copy(Timestamp(3_000), 0, LinkType::RAW, &ip));
        // Long after: kept.
        assert!(!d.is_copy(
            Timestamp(3_000 + DEDUP_WINDOW_NS * 2),
            1,
            LinkType::RAW,
            &ip
        ));
        assert_eq!(d.dropped, 1);
    }
}
