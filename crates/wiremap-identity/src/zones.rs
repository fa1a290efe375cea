//! User zones: named address ranges, for what neither the cluster nor DNS names.

use std::net::IpAddr;
use std::sync::Arc;

use wiremap_model::{Identity, IdentityKind};

/// A line of a zones file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ZoneError {
    /// File name.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Zone {
    net: IpAddr,
    prefix: u8,
    who: Arc<Identity>,
}

/// Named CIDR ranges; the longest prefix wins.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl Zones {
    /// Parses `CIDR = name` lines (`#` starts a comment).
    pub fn parse(file: &str, text: &str) -> Result<Zones, ZoneError> {
        let mut zones = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| ZoneError {
                file: file.to_string(),
                line: i + 1,
                reason,
            };
            let (cidr, name) = line
                .split_once('=')
                .ok_or_else(|| err("expected `CIDR = name`".into()))?;
            let (cidr, name) = (cidr.trim(), name.trim());
            if name.is_empty() {
                return Err(err("empty zone name".into()));
            }
            let (addr, prefix) = match cidr.split_once('/') {
                Some((a, p)) => (
                    a,
                    p.parse::<u8>()
                        .map_err(|_| err(format!("bad prefix length `{p}`")))?,
                ),
                None => (cidr, 255),
            };
            let net: IpAddr = addr
                .parse()
                .map_err(|_| err(format!("bad address `{addr}`")))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = if prefix == 255 { max } else { prefix };
            if prefix > max {
                return Err(err(format!("prefix /{prefix} too long")));
            }
            zones.push(Zone {
                net: masked(net, prefix),
                prefix,
                who: Arc::new(Identity {
                    kind: IdentityKind::Zone,
                    name: name.to_string(),
                    zone: name.to_string(),
                    ..Identity::default()
                }),
            });
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.prefix));
        Ok(Zones { zones })
    }

    /// The zone holding `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<Arc<Identity>> {
        self.zones
            .iter()
            .find(|z| z.net.is_ipv4() == addr.is_ipv4() && masked(addr, z.prefix) == z.net)
            .map(|z| z.who.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_errors_name_the_line() {
        let z =
            Zones::parse("z", "10.0.0.0/8 = corp\n10.20.0.0/16 = lab # comment\n").expect("parses");
        let who = |s: &str| z.lookup(s.parse().expect("ip")).map(|i| i.name.clone());
        assert_eq!(who("10.20.1.1"), Some("lab".into()));
        assert_eq!(who("10.1.1.1"), Some("corp".into()));
        assert_eq!(who("192.168.1.1"), None);
        let e = Zones::parse("zones.txt", "\n10.0.0.0/40 = x").expect_err("bad");
        assert_eq!(e.to_string(), "zones.txt:2: prefix /40 too long");
    }
}
