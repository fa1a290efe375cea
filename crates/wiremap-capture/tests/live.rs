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
