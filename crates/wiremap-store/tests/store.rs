//! The store on real captures: append, reopen, torn tails, retention, export.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use wiremap_capture::{FileSource, PacketSource};
use wiremap_engine::{Engine, EngineConfig};
use wiremap_model::{Entry, Timestamp};
use wiremap_store::{scan, Scope, Store, StoreConfig};

fn pcap(name: &str) -> Option<PathBuf> {
    let base = std::env::var("WIREMAP_PCAPS")
        .unwrap_or_else(|_| format!("{}/../../../shared/pcaps", env!("CARGO_MANIFEST_DIR")));
    let p = Path::new(&base).join(name);
    p.exists().then_some(p)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wiremap-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Feeds a capture through the engine into the store; returns the entries stored.
fn ingest(store: &mut Store, file: &Path) -> Vec<Entry> {
    let mut src = FileSource::open(&file.display().to_string()).expect("opens");
    let mut engine = Engine::new(EngineConfig::default());
    let mut got = Vec::new();
    while src.advance().expect("reads") {
        let p = src.packet();
        store
            .append_packet(p.ts, p.link, p.data, p.orig_len)
            .expect("packet");
        engine.packet(&p, &mut |mut e| {
            store.append_entry(&mut e).expect("entry");
            got.push(e);
        });
    }
    engine.finish(&mut |mut e| {
        store.append_entry(&mut e).expect("entry");
        got.push(e);
    });
    store.flush().expect("flush");
    got
}

fn all(store: &Store) -> Vec<Entry> {
    let mut v = Vec::new();
    scan(
        store.dir(),
        &store.segments(),
        &Scope::default(),
        &mut |e| {
            v.push(e);
            ControlFlow::Continue(())
        },
    )
    .expect("scan");
    v
}

#[test]
fn entries_survive_reopen_and_a_torn_tail() {
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = tmpdir("reopen");
    let mut store = Store::open(StoreConfig::new(&dir)).expect("opens");
    let written = ingest(&mut store, &file);
    assert!(written.len() > 3);
    assert_eq!(all(&store), written);
    // A crash: the open segment was never indexed, and half a record hangs off its end.
    let seq = store.segments()[0].seq;
    drop(store);
    std::fs::remove_file(dir.join(format!("seg-{seq:010}.idx"))).expect("index");
    let seg = dir.join(format!("seg-{seq:010}.entries"));
    let mut bytes = std::fs::read(&seg).expect("segment");
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 9]);
    std::fs::write(&seg, &bytes).expect("tear");
    // Read-only inspection sees the good part and changes nothing.
    let seen = wiremap_store::inspect(&dir).expect("inspects");
    assert_eq!(seen[0].entries as usize, written.len());
    assert!(
        std::fs::read(&seg).expect("segment") == bytes,
        "inspect changed the file"
    );
    assert!(!dir.join(format!("seg-{seq:010}.idx")).exists());
    let store = Store::open(StoreConfig::new(&dir)).expect("reopens");
    assert!(matches!(
        Store::open(StoreConfig::new(&dir)),
        Err(wiremap_store::StoreError::Locked { .. })
    ));
    assert_eq!(store.stats().torn_bytes_truncated, 10);
    assert_eq!(all(&store), written);
    let ids: Vec<u64> = written.iter().map(|e| e.id).collect();
    assert_eq!(
        wiremap_store::get(store.dir(), &store.segments(), ids[2])
            .expect("get")
            .map(|e| e.id),
        Some(ids[2])
    );
    // New entries continue the numbering.
    drop(store);
    let mut store = Store::open(StoreConfig::new(&dir)).expect("reopens");
    let more = ingest(&mut store, &file);
    assert_eq!(more[0].id, ids[ids.len() - 1] + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_by_size_drops_oldest_segments() {
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = tmpdir("retention");
    let mut cfg = StoreConfig::new(&dir);
    cfg.max_size = Some(200 << 10);
    let mut store = Store::open(cfg).expect("opens");
    for _ in 0..6 {
        ingest(&mut store, &file);
    }
    let s = store.stats();
    assert!(s.segments_dropped > 0, "{s:?}");
    assert!(s.bytes <= 200 << 10, "{s:?}");
    // Every segment counted once, the open one included (retention ran while it was open).
    let segs = store.segments();
    assert!(segs.last().is_some_and(|m| !m.closed), "a segment is open");
    let each: u64 = segs.iter().map(|m| m.bytes()).sum();
    assert_eq!(s.bytes, each, "{s:?}");
    assert_eq!(s.segments, segs.len() as u64);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|d| d.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(on_disk <= (200 << 10) + (64 << 10), "{on_disk}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scope_skips_by_time_and_protocol() {
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = tmpdir("scope");
    let mut store = Store::open(StoreConfig::new(&dir)).expect("opens");
    let written = ingest(&mut store, &file);
    let mid = written[written.len() / 2].timestamp;
    let mut n = 0;
    let scope = Scope {
        from: Some(mid),
        ..Scope::default()
    };
    scan(store.dir(), &store.segments(), &scope, &mut |e| {
        assert!(e.timestamp >= mid);
        n += 1;
        ControlFlow::Continue(())
    })
    .expect("scan");
    assert_eq!(n, written.iter().filter(|e| e.timestamp >= mid).count());
    let scope = Scope {
        protocols: Some([wiremap_model::Protocol::Kafka].into()),
        ..Scope::default()
    };
    assert!(store.segments().iter().all(|m| !m.may_match(&scope)));
    let late = Scope {
        from: Some(Timestamp(i64::MAX - 1)),
        ..Scope::default()
    };
    assert!(store.segments().iter().all(|m| !m.may_match(&late)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_carries_packets_and_history() {
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = tmpdir("export");
    let mut store = Store::open(StoreConfig::new(&dir)).expect("opens");
    let written = ingest(&mut store, &file);
    let mut out = Vec::new();
    let report = wiremap_store::export(
        store.dir(),
        &store.segments(),
        &Scope::default(),
        &|e| e.protocol == wiremap_model::Protocol::Http,
        &mut out,
    )
    .expect("export");
    assert_eq!(
        report.entries as usize,
        written
            .iter()
            .filter(|e| e.protocol == wiremap_model::Protocol::Http)
            .count()
    );
    assert!(report.packets > 10);
    // Re-dissecting the export gives the same HTTP entries.
    let mut src = FileSource::new("export", Box::new(std::io::Cursor::new(out))).expect("opens");
    let mut engine = Engine::new(EngineConfig::default());
    let mut again = Vec::new();
    while src.advance().expect("reads") {
        let p = src.packet();
        engine.packet(&p, &mut |e| again.push(e));
    }
    engine.finish(&mut |e| again.push(e));
    let http = |v: &[Entry]| -> Vec<(Timestamp, String)> {
        v.iter()
            .filter_map(|e| match &e.detail {
                wiremap_model::Detail::Http(h) => Some((e.timestamp, h.url.clone())),
                _ => None,
            })
            .collect()
    };
    assert_eq!(http(&again), http(&written));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An identity dropped after its entry was stored may leave its address to another one; the
/// store must not take the newcomer for the old identity.
/// A TCP entry from 10.0.0.1:40000 to 10.0.0.2:80 at `secs`, in flow `i`.
fn tcp_entry(i: u64, secs: i64) -> Entry {
    use wiremap_model::{Detail, Endpoint, Protocol, Transport};
    Entry {
        id: 0,
        stream: i,
        index: 0,
        timestamp: Timestamp::from_parts(secs, 0),
        elapsed_time: 10,
        protocol: Protocol::Tcp,
        transport: Transport::Tcp,
        src: Endpoint::new("10.0.0.1".parse().expect("ip"), 40000),
        dst: Endpoint::new("10.0.0.2".parse().expect("ip"), 80),
        request_size: 100,
        response_size: 100,
        has_response: true,
        status_code: 0,
        error: false,
        node_name: String::new(),
        seen_by: Vec::new(),
        client_isn: None,
        detail: Detail::None,
    }
}

#[test]
fn identities_are_told_apart_when_an_address_is_reused() {
    use std::sync::Arc;
    use wiremap_model::Identity;
    let dir = tmpdir("identity-reuse");
    let mut store = Store::open(StoreConfig::new(&dir)).expect("opens");
    let entry = |i: u64, who: Arc<Identity>| {
        let mut e = tcp_entry(i, 1_700_000_000 + i as i64);
        e.src.identity = Some(who);
        e
    };
    let known = Identity {
        name: "known".into(),
        ..Identity::default()
    };
    store
        .append_entry(&mut entry(0, Arc::new(known.clone())))
        .expect("entry");
    let mut names = vec!["known".to_string()];
    for i in 1..50u64 {
        // A second pointer to a value the segment already has; dropped right after.
        store
            .append_entry(&mut entry(i, Arc::new(known.clone())))
            .expect("entry");
        names.push("known".into());
        // A new identity, likely at the address just freed.
        let who = Arc::new(Identity {
            name: format!("pod-{i}"),
            ..Identity::default()
        });
        store.append_entry(&mut entry(i, who)).expect("entry");
        names.push(format!("pod-{i}"));
    }
    store.flush().expect("flush");
    let got: Vec<String> = all(&store)
        .iter()
        .map(|e| e.src.identity().name.clone())
        .collect();
    assert_eq!(got, names);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sparse_traffic_over_weeks_makes_a_handful_of_segments() {
    let dir = tmpdir("sparse");
    let mut store = Store::open(StoreConfig::new(&dir)).expect("opens");
    // An exchange every ten minutes for four weeks: 4,032 minutes with data.
    let n = 4 * 7 * 24 * 6;
    for i in 0..n {
        let mut e = tcp_entry(i, 1_700_000_000 + i as i64 * 600);
        store.append_entry(&mut e).expect("entry");
    }
    store.close_open().expect("close");
    // Small segments stay open past a minute, up to a day: 28, not 4,032.
    let segs = store.segments();
    assert!(segs.len() <= 29, "{} segments", segs.len());
    assert_eq!(all(&store).len(), n as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A map's scan reads ahead on a thread of its own: it hands over every entry once, in
/// order, like the plain scan, and a stop ends it (and its thread) at once.
#[test]
fn scans_ahead_give_the_same_entries_and_stop_when_asked() {
    use wiremap_store::{EntryStore, Query, Segments};
    let Some(file) = pcap("mixed_ppa_dns-http-browsing.cap") else {
        return;
    };
    let dir = tmpdir("ahead");
    let mut cfg = StoreConfig::new(&dir);
    cfg.segment_bytes = 64 << 10;
    cfg.segment_min_bytes = 0;
    let mut store = Store::open(cfg).expect("opens");
    for _ in 0..4 {
        ingest(&mut store, &file);
    }
    let segs = Segments {
        dir: dir.clone(),
        segments: store.segments(),
    };
    assert!(segs.segments.len() > 2, "{} segments", segs.segments.len());
    let scope = Scope::default();
    let never = || false;
    let q = Query {
        scope: &scope,
        filter: None,
        after_id: 0,
        stop: &never,
    };
    let mut lean = Vec::new();
    segs.scan_lean(&q, &mut |e| {
        lean.push(e.id);
        ControlFlow::Continue(())
    })
    .expect("scans");
    let plain: Vec<u64> = all(&store).iter().map(|e| e.id).collect();
    assert_eq!(lean, plain);
    let stopped = || true;
    let q = Query {
        stop: &stopped,
        ..q
    };
    // Returning at all means the reading thread ended (the scan joins it).
    let mut seen = 0;
    segs.scan_lean(&q, &mut |_| {
        seen += 1;
        ControlFlow::Continue(())
    })
    .expect("scans");
    assert_eq!(seen, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
