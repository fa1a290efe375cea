//! Live capture on the loopback interface (needs CAP_NET_RAW; the test command runs as root).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use wiremap_capture::{LiveError, LiveSource, RingConfig};

#[test]
fn loopback_packets_arrive_once_each_and_filtered() {
    let mut live = match LiveSource::open(
        &["lo".into()],
        Some("udp and port 45999"),
        RingConfig::default(),
    ) {
        Err(LiveError::Permission { .. }) if not_root() => return,
        r => r.expect("opens lo"),
    };
    let rx = UdpSocket::bind("127.0.0.1:45999").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let noise = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..100u32 {
        tx.send_to(&i.to_be_bytes(), "127.0.0.1:45999")
            .expect("send");
        // Not matching the filter.
        noise
            .send_to(
                b"x",
                rx.local_addr().map(|_| "127.0.0.1:45998").expect("addr"),
            )
            .ok();
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < 100 && Instant::now() < deadline {
        if let Some(p) = live.next_packet(Duration::from_millis(100)).expect("reads") {
            // Ethernet + IPv4 + UDP + 4 bytes.
            assert_eq!(p.data.len(), 14 + 20 + 8 + 4);
            let d = &p.data[42..46];
            seen.push(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
    }
    // Nothing more: no loopback doubles, no filtered-out noise.
    if let Some(p) = live.next_packet(Duration::from_millis(200)).expect("reads") {
        panic!("unexpected packet of {} bytes", p.data.len());
    }
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    let stats = live.kernel_stats();
    assert_eq!(stats[0].1.drops, 0);
    assert!(stats[0].1.packets >= 100, "{stats:?}");
}

fn not_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(true)
}

/// A network namespace and a veth pair into it, removed however the test ends.
struct Lab {
    ns: String,
    host: String,
}

impl Lab {
    fn ip(args: &[&str]) -> bool {
        std::process::Command::new("ip")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn new(tag: &str) -> Option<Lab> {
        let id = std::process::id() % 100_000;
        let lab = Lab {
            ns: format!("wm{tag}{id}"),
            host: format!("wm{tag}a{id}"),
        };
        Lab::ip(&["netns", "add", &lab.ns]).then_some(lab)
    }

    /// Makes the veth (the host end named `self.host`) and addresses it: host 10.254.7.1,
    /// namespace 10.254.7.2.
    fn link(&self) -> bool {
        let peer = format!("{}b", &self.host[..self.host.len().min(14)]);
        Lab::ip(&[
            "link", "add", &self.host, "type", "veth", "peer", "name", &peer,
        ]) && Lab::ip(&["link", "set", &peer, "netns", &self.ns])
            && Lab::ip(&["addr", "add", "10.254.7.1/30", "dev", &self.host])
            && Lab::ip(&["link", "set", &self.host, "up"])
            && Lab::ip(&["-n", &self.ns, "addr", "add", "10.254.7.2/30", "dev", &peer])
            && Lab::ip(&["-n", &self.ns, "link", "set", &peer, "up"])
            && Lab::ip(&["-n", &self.ns, "link", "set", "lo", "up"])
    }

    /// `n` UDP datagrams from the namespace to the host end, port 45977.
    fn send(&self, n: usize) -> bool {
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({n}): s.sendto(b'follow', ('10.254.7.1', 45977))"
        );
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-c", &code])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::ip(&["link", "del", &self.host]);
        Lab::ip(&["netns", "del", &self.ns]);
    }
}

#[test]
fn following_every_interface_picks_up_a_veth_made_later_and_lets_it_go() {
    if not_root() {
        return;
    }
    let mut live = LiveSource::open_all(Some("udp and port 45977"), RingConfig::default())
        .expect("opens every interface");
    let Some(lab) = Lab::new("f") else {
        eprintln!("skipped: `ip netns` is not available");
        return;
    };
    assert!(lab.link(), "veth made");
    // Within a second or so the new interface is captured.
    let deadline = Instant::now() + Duration::from_secs(3);
    while live.follow_counts().added == 0 && Instant::now() < deadline {
        let _ = live.next_packet(Duration::from_millis(50)).expect("reads");
    }
    assert!(
        live.follow_counts().added >= 1,
        "{:?}",
        live.follow_counts()
    );
    assert!(live.interfaces().contains(&lab.host.as_str()));
    assert!(lab.send(20), "datagrams sent");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen < 20 && Instant::now() < deadline {
        if let Some(p) = live.next_packet(Duration::from_millis(50)).expect("reads") {
            if p.data.ends_with(b"follow") {
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 20, "every datagram over the new veth, once");
    // The veth goes: its ring is closed and counted.
    Lab::ip(&["link", "del", &lab.host]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while live.follow_counts().removed == 0 && Instant::now() < deadline {
        let _ = live.next_packet(Duration::from_millis(50)).expect("reads");
    }
    assert!(
        live.follow_counts().removed >= 1,
        "{:?}",
        live.follow_counts()
    );
    assert!(!live.interfaces().contains(&lab.host.as_str()));
}
