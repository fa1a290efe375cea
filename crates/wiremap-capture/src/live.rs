//! Live capture with AF_PACKET and a TPACKET_V3 memory-mapped ring per interface: the kernel
//! fills blocks of packets, we read them in place and hand each block back when done. No
//! libpcap. Needs CAP_NET_RAW.
//!
//! The same packet crossing two captured interfaces is delivered once (see [`Dedup`]).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wiremap_model::Timestamp;

use crate::bpf::compile_bpf;
use crate::dedup::Dedup;
use crate::{LinkType, Packet};

const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
const SO_ATTACH_FILTER: libc::c_int = 26;
const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_USER: u32 = 1;
const PACKET_OUTGOING: u8 = 4;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: u16 = 1;
/// Symmetric flow hash (both directions of a flow go to one member), IP fragments reassembled
/// before hashing.
const FANOUT_HASH_DEFRAG: u32 = 0x8000;
/// `sizeof(struct tpacket3_hdr)`, after which the kernel puts a `sockaddr_ll`.
const HDR3: usize = 48;

/// Why live capture could not start or went on.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The process may not open packet sockets.
    #[error("capturing on {iface} needs CAP_NET_RAW (run as root, or `setcap cap_net_raw,cap_net_admin+ep` on the binary)")]
    Permission {
        /// Interface.
        iface: String,
    },
    /// No such interface.
    #[error("no network interface named `{iface}`")]
    NoInterface {
        /// Interface.
        iface: String,
    },
    /// A system call failed.
    #[error("{iface}: {what}: {source}")]
    Os {
        /// Interface.
        iface: String,
        /// Which step.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The BPF filter expression did not compile.
    #[error("bad --bpf filter `{expr}`: {reason}")]
    Bpf {
        /// The expression.
        expr: String,
        /// Why.
        reason: String,
    },
}

/// Kernel counters of a ring, summed since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    /// Packets the kernel passed to the ring.
    pub packets: u64,
    /// Packets the kernel dropped because the ring was full.
    pub drops: u64,
}

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Bytes per block (a power of two, multiple of the page size).
    pub block_size: u32,
    /// Blocks per ring.
    pub blocks: u32,
    /// A block is handed over after this many milliseconds even when not full.
    pub timeout_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 20,
            blocks: 16,
            timeout_ms: 50,
        }
    }
}

struct Ring {
    iface: String,
    /// Kernel index: names are reused, indexes are not.
    ifindex: u32,
    fd: libc::c_int,
    map: *mut u8,
    map_len: usize,
    block_size: usize,
    blocks: usize,
    link: LinkType,
    loopback: bool,
    /// Block being read, and where its next packet starts.
    block: usize,
    left: u32,
    next: usize,
    holding: bool,
    stats: KernelStats,
}

// The mapping belongs to this ring alone; it moves with it between threads.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` come from a successful mmap; `fd` is ours.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
            libc::close(self.fd);
        }
    }
}

fn os(iface: &str, what: &'static str) -> LiveError {
    LiveError::Os {
        iface: iface.to_string(),
        what,
        source: std::io::Error::last_os_error(),
    }
}

fn setopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, v: &T) -> libc::c_int {
    // SAFETY: `v` is a live value of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: u16,
    mr_alen: u16,
    mr_address: [u8; 8],
}

#[repr(C)]
struct Req3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// The kernel index of `iface`.
fn ifindex(iface: &str) -> Option<u32> {
    let name = CString::new(iface).ok()?;
    // SAFETY: `name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

fn link_of(iface: &str) -> (LinkType, bool) {
    let t = std::fs::read_to_string(format!("/sys/class/net/{iface}/type")).unwrap_or_default();
    match t.trim() {
        // Ethernet, and loopback (which AF_PACKET shows with an Ethernet header).
        "1" => (LinkType::ETHERNET, false),
        "772" => (LinkType::ETHERNET, true),
        _ => (LinkType::RAW, false),
    }
}

impl Ring {
    fn open(
        iface: &str,
        cfg: RingConfig,
        bpf: Option<&str>,
        fanout: Option<u16>,
    ) -> Result<Ring, LiveError> {
        let name = CString::new(iface).map_err(|_| LiveError::NoInterface {
            iface: iface.to_string(),
        })?;
        // SAFETY: `name` is a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(LiveError::NoInterface {
                iface: iface.to_string(),
            });
        }
        let (link, loopback) = link_of(iface);
        // Protocol 0: the socket receives nothing until it is bound to the interface below,
        // so no packet of another interface slips into the ring meanwhile.
        // SAFETY: plain system call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return Err(LiveError::Permission {
                    iface: iface.to_string(),
                });
            }
            return Err(LiveError::Os {
                iface: iface.to_string(),
                what: "socket",
                source: e,
            });
        }
        let fail = |what| {
            let e = os(iface, what);
            // SAFETY: closing the socket we opened.
            unsafe { libc::close(fd) };
            e
        };
        if let Some(expr) = bpf {
            let prog = compile_bpf(expr, link).inspect_err(|_| {
                // SAFETY: closing the socket we opened.
                unsafe { libc::close(fd) };
            })?;
            let mut filter: Vec<libc::sock_filter> = prog
                .iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect();
            let fprog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if setopt(fd, libc::SOL_SOCKET, SO_ATTACH_FILTER, &fprog) != 0 {
                return Err(fail("attach BPF filter"));
            }
        }
        let version: libc::c_int = TPACKET_V3;
        if setopt(fd, SOL_PACKET, PACKET_VERSION, &version) != 0 {
            return Err(fail("TPACKET_V3"));
        }
        let req = Req3 {
            block_size: cfg.block_size,
            block_nr: cfg.blocks,
            frame_size: 2048,
            frame_nr: cfg.block_size / 2048 * cfg.blocks,
            retire_blk_tov: cfg.timeout_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        if setopt(fd, SOL_PACKET, PACKET_RX_RING, &req) != 0 {
            return Err(fail("ring"));
        }
        let map_len = cfg.block_size as usize * cfg.blocks as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd,
                0,
            )
        };
        let map = if map == libc::MAP_FAILED {
            // Without MAP_LOCKED (RLIMIT_MEMLOCK may be small).
            // SAFETY: as above.
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if m == libc::MAP_FAILED {
                return Err(fail("mmap"));
            }
            m
        } else {
            map
        };
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        let ring = Ring {
            iface: iface.to_string(),
            ifindex: index,
            fd,
            map: map.cast(),
            map_len,
            block_size: cfg.block_size as usize,
            blocks: cfg.blocks as usize,
            link,
            loopback,
            block: 0,
            left: 0,
            next: 0,
            holding: false,
            stats: KernelStats::default(),
        };
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os(iface, "bind"));
        }
        // Promiscuous while this socket lives: a bridge then shows the frames it forwards
        // between its ports, not only those addressed to it. The kernel drops the membership
        // with the socket, so the interface is left as it was however the process ends.
        let mreq = PacketMreq {
            mr_ifindex: index as libc::c_int,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        if setopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq) != 0 {
            return Err(os(iface, "promiscuous mode"));
        }
        if let Some(group) = fanout {
            let arg: u32 = u32::from(group) | (FANOUT_HASH_DEFRAG << 16);
            if setopt(fd, SOL_PACKET, PACKET_FANOUT, &arg) != 0 {
                return Err(os(iface, "fanout group"));
            }
        }
        Ok(ring)
    }

    fn status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: block_status is a 4-aligned u32 at offset 8 of a block inside the mapping,
        // shared with the kernel; accessed atomically only.
        unsafe { &*(self.map.add(block * self.block_size + 8) as *const AtomicU32) }
    }

    fn block_bytes(&self) -> &[u8] {
        // SAFETY: the current block lies inside the mapping and belongs to user space while
        // its status says so (`holding`).
        unsafe {
            std::slice::from_raw_parts(self.map.add(self.block * self.block_size), self.block_size)
        }
    }

    /// Takes the next ready block, if any.
    fn take_block(&mut self) -> bool {
        if self.holding {
            return true;
        }
        if self.status(self.block).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return false;
        }
        let b = self.block_bytes();
        let num = u32_at(b, 12);
        let first = u32_at(b, 16) as usize;
        self.left = num;
        self.next = first;
        self.holding = true;
        true
    }

    fn release_block(&mut self) {
        if self.holding {
            self.status(self.block).store(0, Ordering::Release);
            self.holding = false;
            self.block = (self.block + 1) % self.blocks;
        }
    }

    /// The next packet of the held block: (ts, bytes, orig_len, outgoing).
    fn next_packet(&mut self) -> Option<(Timestamp, usize, usize, u32, bool)> {
        while self.holding {
            if self.left == 0 || self.next + HDR3 + 20 > self.block_size {
                self.release_block();
                return None;
            }
            let b = self.block_bytes();
            let at = self.next;
            let next_off = u32_at(b, at) as usize;
            let sec = u32_at(b, at + 4);
            let nsec = u32_at(b, at + 8);
            let snap = u32_at(b, at + 12) as usize;
            let len = u32_at(b, at + 16);
            let mac = u16_at(b, at + 24) as usize;
            let pkttype = b[at + HDR3 + 10];
            self.left -= 1;
            self.next = if next_off == 0 {
                self.block_size
            } else {
                at + next_off
            };
            let start = at + mac;
            if start + snap > self.block_size {
                continue;
            }
            let ts = Timestamp::from_parts(i64::from(sec), nsec);
            return Some((ts, start, snap, len, pkttype == PACKET_OUTGOING));
        }
        None
    }

    fn read_stats(&mut self) -> KernelStats {
        let mut st = [0u32; 3];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` has room for tpacket_stats_v3 (three u32s).
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            // The kernel resets its counters on every read.
            self.stats.packets += u64::from(st[0]);
            self.stats.drops += u64::from(st[1]);
        }
        self.stats
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_ne_bytes([x[0], x[1]]))
}

/// Live packets from one or more interfaces, read in place from their rings.
pub struct LiveSource {
    rings: Vec<Ring>,
    turn: usize,
    dedup: Dedup,
    follow: Option<Following>,
}

/// How a source that follows every interface opens new rings, and what it counted.
struct Following {
    watch: Option<crate::follow::Watch>,
    schedule: crate::follow::Schedule,
    bpf: Option<String>,
    cfg: RingConfig,
    fanout: Option<u16>,
    counts: FollowCounts,
}

/// Interfaces a following source picked up and let go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FollowCounts {
    /// Interfaces captured after they appeared.
    pub added: u64,
    /// Interfaces closed because they went away.
    pub removed: u64,
    /// Interfaces that appeared but could not be opened (gone again, or refused).
    pub failed: u64,
}

/// The fanout group of an interface: the same in every worker, so that they share it.
fn group(base: Option<u16>, ifindex: u32) -> Option<u16> {
    base.map(|b| b.wrapping_add(ifindex as u16))
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("interfaces", &self.interfaces())
            .finish()
    }
}

impl LiveSource {
    /// Opens a ring on each interface, with an optional tcpdump-syntax filter.
    pub fn open(ifaces: &[String], bpf: Option<&str>, cfg: RingConfig) -> Result<Self, LiveError> {
        let rings = ifaces
            .iter()
            .map(|i| Ring::open(i, cfg, bpf, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LiveSource::from_rings(rings))
    }

    /// Opens a ring on every interface but loopback, and follows them: an interface that
    /// appears later is captured within a second, one that goes away is closed (counted in
    /// [`LiveSource::follow_counts`]).
    pub fn open_all(bpf: Option<&str>, cfg: RingConfig) -> Result<Self, LiveError> {
        Self::following(bpf, cfg, None)
    }

    fn following(
        bpf: Option<&str>,
        cfg: RingConfig,
        fanout: Option<u16>,
    ) -> Result<Self, LiveError> {
        if let Some(expr) = bpf {
            // A bad filter is refused now, not skipped interface by interface.
            compile_bpf(expr, LinkType::ETHERNET)?;
        }
        let mut s = LiveSource::from_rings(Vec::new());
        s.follow = Some(Following {
            watch: crate::follow::Watch::open(),
            schedule: crate::follow::Schedule::new(),
            bpf: bpf.map(str::to_string),
            cfg,
            fanout,
            counts: FollowCounts::default(),
        });
        for (name, index) in crate::follow::interfaces() {
            let ring = Ring::open(&name, cfg, bpf, group(fanout, index))?;
            s.rings.push(ring);
        }
        Ok(s)
    }

    /// Interfaces picked up and let go since the start (zero unless following).
    pub fn follow_counts(&self) -> FollowCounts {
        self.follow.as_ref().map(|f| f.counts).unwrap_or_default()
    }

    /// Opens rings on interfaces that appeared and closes those that went away.
    fn rescan(&mut self) {
        let Some(f) = self.follow.as_mut() else {
            return;
        };
        let now = crate::follow::interfaces();
        let before = self.rings.len();
        self.rings
            .retain(|r| now.iter().any(|(n, i)| *n == r.iface && *i == r.ifindex));
        f.counts.removed += (before - self.rings.len()) as u64;
        for (name, index) in now {
            if self.rings.iter().any(|r| r.ifindex == index) {
                continue;
            }
            match Ring::open(&name, f.cfg, f.bpf.as_deref(), group(f.fanout, index)) {
                Ok(ring) => {
                    f.counts.added += 1;
                    self.rings.push(ring);
                }
                Err(_) => f.counts.failed += 1,
            }
        }
        if self.turn >= self.rings.len() {
            self.turn = 0;
        }
    }

    fn from_rings(rings: Vec<Ring>) -> Self {
        LiveSource {
            rings,
            turn: 0,
            dedup: Dedup::default(),
            follow: None,
        }
    }

    /// `workers` sources that share the interfaces' traffic by flow: each interface gets a
    /// kernel fanout group (symmetric flow hash), and every source joins every group in the
    /// same order, so a flow lands on the same source on every interface, both directions.
    pub fn open_fanout(
        ifaces: &[String],
        bpf: Option<&str>,
        cfg: RingConfig,
        workers: usize,
    ) -> Result<Vec<Self>, LiveError> {
        if workers <= 1 {
            return Ok(vec![LiveSource::open(ifaces, bpf, cfg)?]);
        }
        let base = Some((std::process::id() as u16).wrapping_mul(31));
        (0..workers)
            .map(|_| {
                let rings = ifaces
                    .iter()
                    .map(|i| {
                        let index = ifindex(i).ok_or_else(|| LiveError::NoInterface {
                            iface: i.to_string(),
                        })?;
                        Ring::open(i, cfg, bpf, group(base, index))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(LiveSource::from_rings(rings))
            })
            .collect()
    }

    /// [`LiveSource::open_all`] for `workers` sources sharing every interface by flow; each
    /// follows the interfaces on its own and joins the same group for each.
    pub fn open_all_fanout(
        bpf: Option<&str>,
        cfg: RingConfig,
        workers: usize,
    ) -> Result<Vec<Self>, LiveError> {
        if workers <= 1 {
            return Ok(vec![LiveSource::open_all(bpf, cfg)?]);
        }
        let base = Some((std::process::id() as u16).wrapping_mul(31));
        (0..workers)
            .map(|_| Self::following(bpf, cfg, base))
            .collect()
    }

    /// Interface names.
    pub fn interfaces(&self) -> Vec<&str> {
        self.rings.iter().map(|r| r.iface.as_str()).collect()
    }

    /// Waits up to `timeout` for the next packet; `Ok(None)` when none came.
    pub fn next_packet(&mut self, timeout: Duration) -> Result<Option<Packet<'_>>, LiveError> {
        if self.follow.as_mut().is_some_and(|f| f.schedule.take()) {
            self.rescan();
        }
        let multi = self.rings.len() > 1;
        loop {
            if let Some(found) = self.poll_rings(multi) {
                return Ok(Some(self.packet_at(found)));
            }
            if !self.wait(timeout)? {
                return Ok(None);
            }
            if self.follow.as_ref().is_some_and(|f| f.schedule.due) {
                // Links changed: the caller comes back and the next call rescans.
                return Ok(None);
            }
        }
    }

    fn packet_at(
        &self,
        (r, ts, start, len, orig): (usize, Timestamp, usize, usize, u32),
    ) -> Packet<'_> {
        let ring = &self.rings[r];
        Packet {
            ts,
            link: ring.link,
            data: &ring.block_bytes()[start..start + len],
            orig_len: orig,
            interface: r as u32,
        }
    }

    /// The next packet from any ring that has one ready, taking rings in turn.
    fn poll_rings(&mut self, multi: bool) -> Option<(usize, Timestamp, usize, usize, u32)> {
        let n = self.rings.len();
        for k in 0..n {
            let r = (self.turn + k) % n;
            loop {
                let ring = &mut self.rings[r];
                if !ring.take_block() {
                    break;
                }
                let Some((ts, start, len, orig, outgoing)) = ring.next_packet() else {
                    continue;
                };
                // Loopback shows every packet twice: once leaving, once arriving.
                if ring.loopback && outgoing {
                    continue;
                }
                if multi {
                    let data = &ring.block_bytes()[start..start + len];
                    let (link, ifindex) = (ring.link, ring.ifindex);
                    if self.dedup.is_copy(ts, ifindex, link, data) {
                        continue;
                    }
                }
                self.turn = r;
                return Some((r, ts, start, len, orig));
            }
        }
        None
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, LiveError> {
        let mut fds: Vec<libc::pollfd> = self
            .rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.fd,
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            })
            .collect();
        let watch = self.follow.as_ref().and_then(|f| f.watch.as_ref());
        if let Some(w) = watch {
            fds.push(libc::pollfd {
                fd: w.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Following: wake at least once a second to rescan.
        let timeout = match &self.follow {
            Some(_) => timeout.min(crate::follow::RESCAN_EVERY),
            None => timeout,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if let Some(f) = self.follow.as_mut() {
            let changed = f.watch.as_ref().is_some_and(|w| w.drain());
            // A ring whose interface went away reports an error instead of packets.
            let broken = fds[..self.rings.len()]
                .iter()
                .any(|p| p.revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0);
            if changed || broken {
                f.schedule.due = true;
            }
        }
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(LiveError::Os {
                iface: self.interfaces().join(","),
                what: "poll",
                source: e,
            });
        }
        Ok(rc > 0)
    }

    /// Kernel counters per interface (packets delivered, drops for a full ring).
    pub fn kernel_stats(&mut self) -> Vec<(String, KernelStats)> {
        self.rings
            .iter_mut()
            .map(|r| (r.iface.clone(), r.read_stats()))
            .collect()
    }

    /// Copies dropped because another interface delivered the same packet.
    pub fn duplicates(&self) -> u64 {
        self.dedup.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let e = LiveSource::open(&["nope0x".into()], None, RingConfig::default())
            .expect_err("no such interface");
        assert_eq!(e.to_string(), "no network interface named `nope0x`");
    }
}
