//! Per-protocol dissector throughput (MB/s of payload) on the flows of real captures:
//! the reassembled bytes of each shared capture are replayed into a fresh dissector.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../tests/common/mod.rs"]
mod common;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocols");
    for (name, capture) in [
        ("http1", "http1_zeek_1000-requests-keepalive.pcap"),
        ("http2_grpc", "h2c_grpcbook_server-streaming.pcapng"),
        ("dns", "dns_suricata_bug-1158-many-a.pcap"),
        ("tls", "tls_zeek_google-cert-repeat.pcap"),
        ("redis", "redis_zeek_django-cloud.pcapng"),
        ("kafka", "kafka_ndpi_kafka.pcapng"),
        ("mongodb", "mongo_beats_op-msg-9991.pcap"),
        ("postgresql", "pgsql_suricata_5000-query-results.pcap"),
        ("mysql", "mysql_beats_long.pcap"),
        ("amqp", "amqp_ndpi_amqp.pcap"),
        ("websocket", "ws_zeek_websocket.pcap"),
    ] {
        let flows = common::flows(capture);
        let bytes: usize = flows
            .iter()
            .flat_map(|f| f.runs.iter())
            .map(|(_, _, b)| b.len())
            .sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                flows
                    .iter()
                    .map(|f| common::replay(&f.info, &common::whole(f)).len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
