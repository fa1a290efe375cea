//! Damaged stores: a real store is built through the public API, then damaged on disk the
//! way a bad disk, a crash or a stray hand would, and must still serve everything intact.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wiremap_capture::{FileSource, LinkType, PacketSource};
use wiremap_model::{Detail, Endpoint, Entry, Identity, Protocol, Timestamp, Transport};
use wiremap_store::{scan, Scope, Store, StoreConfig, StoreError, QUARANTINE_DIR};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wiremap-damage-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const T0: i64 = 1_700_000_000;

fn entry(i: u64, who: Option<Arc<Identity>>) -> Entry {
    Entry {
        id: 0,
        stream: i,
        index: 0,
        timestamp: Timestamp::from_parts(T0 + i as i64, 0),
        elapsed_time: 1000,
        protocol: Protocol::Tcp,
        transport: Transport::Tcp,
        src: Endpoint {
            ip: "10.0.0.1".parse().expect("ip"),
            port: 1000 + i as u16,
            identity: who,
        },
        dst: Endpoint::new("10.0.0.2".parse().expect("ip"), 80),
        request_size: i,
        response_size: 0,
        has_response: false,
        status_code: 0,
        error: false,
        node_name: String::new(),
        seen_by: Vec::new(),
        client_isn: None,
        detail: Detail::None,
    }
}

/// An Ethernet/IPv4/TCP packet of the flow of entry `i`.
fn packet(i: u64, k: u8) -> Vec<u8> {
    let mut p = vec![0u8; 14 + 20 + 20 + 8];
    p[12] = 0x08; // IPv4
    let ip = &mut p[14..34];
    ip[0] = 0x45;
    let total = (20 + 20 + 8u16).to_be_bytes();
    ip[2..4].copy_from_slice(&total);
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let tcp = &mut p[34..54];
    tcp[0..2].copy_from_slice(&(1000 + i as u16).to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&u32::from(k).to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x18;
    p[54..].copy_from_slice(&[k; 8]);
    p
}

/// A store of `n` entries one second apart, each with three packets of its flow; every
/// third entry names its client; flushed after every tenth entry (so a packets frame holds
/// the packets of ten entries). Returns the entries as stored.
fn build(dir: &Path, n: u64, segment_secs: i64) -> Vec<Entry> {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_secs = segment_secs;
    cfg.segment_min_bytes = 0;
    let mut store = Store::open(cfg).expect("opens");
    let mut out = Vec::new();
    for i in 0..n {
        let ts = Timestamp::from_parts(T0 + i as i64, 0);
        for k in 0..3 {
            store
                .append_packet(ts, LinkType::ETHERNET, &packet(i, k), 62)
                .expect("packet");
        }
        let who = (i % 3 == 0).then(|| {
            Arc::new(Identity {
                name: format!("client-{}", i % 7),
                ..Identity::default()
            })
        });
        let mut e = entry(i, who);
        store.append_entry(&mut e).expect("entry");
        out.push(e);
        if i % 10 == 9 {
            store.flush().expect("flush");
        }
    }
    drop(store);
    out
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir)).expect("opens")
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

fn seg(dir: &Path, seq: u64, ext: &str) -> PathBuf {
    dir.join(format!("seg-{seq:010}.{ext}"))
}

/// The records of an entries file: offset, whole length, record type.
fn records(bytes: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut v = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        v.push((at, 8 + len, bytes[at + 8]));
        at += 8 + len;
    }
    v
}

/// The frames of a packets file: offset, whole length (a 32-byte header, then `len` bytes).
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut at = 8;
    while at + 32 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        v.push((at, 32 + len));
        at += 32 + len;
    }
    v
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let c = b[*at];
        *at += 1;
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            break;
        }
    }
    v
}

/// Damages the middle block of entries of segment 1 (`field`: 1 a byte of its length, else
/// a byte that far into its payload); returns the streams (entry numbers) of the entries it
/// held and its length.
fn damage_middle_block(dir: &Path, field: usize) -> (std::ops::Range<u64>, usize) {
    let path = seg(dir, 1, "entries");
    let mut bytes = std::fs::read(&path).expect("segment");
    let blocks: Vec<_> = records(&bytes).into_iter().filter(|r| r.2 == 4).collect();
    assert!(blocks.len() >= 3, "{} blocks", blocks.len());
    let (at, len, _) = blocks[blocks.len() / 2];
    // The head after the record type: entry count, first id (ids start at 1, streams at 0).
    let mut p = at + 9;
    let count = varint(&bytes, &mut p);
    let first = varint(&bytes, &mut p) - 1;
    let field = if field == 1 { 1 } else { len / 2 };
    bytes[at + field] ^= 0x5a;
    std::fs::write(&path, &bytes).expect("damage");
    (first..first + count, len)
}

fn without(written: &[Entry], lost: &std::ops::Range<u64>) -> Vec<Entry> {
    written
        .iter()
        .filter(|e| !lost.contains(&e.stream))
        .cloned()
        .collect()
}

/// Entries enough for several blocks in one segment.
const MANY: u64 = 4_000;

#[test]
fn a_flipped_byte_mid_segment_costs_one_block_with_the_index_intact() {
    for (tag, field) in [("payload", 12), ("length", 1)] {
        let dir = tmpdir(&format!("mid-{tag}"));
        let written = build(&dir, MANY, 100_000);
        let (lost, len) = damage_middle_block(&dir, field);
        assert!(seg(&dir, 1, "idx").exists());
        let store = open(&dir);
        let kept = without(&written, &lost);
        assert_eq!(all(&store), kept, "{tag}");
        let s = store.stats();
        assert_eq!(
            (s.damaged_records, s.damaged_bytes),
            (1, len as u64),
            "{tag}"
        );
        // Read again: the same span is not counted twice.
        assert_eq!(all(&store).len(), kept.len());
        assert_eq!(store.stats().damaged_records, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn recovery_keeps_the_intact_records_after_damage() {
    let dir = tmpdir("recovery");
    let written = build(&dir, MANY, 100_000);
    let (lost, len) = damage_middle_block(&dir, 12);
    std::fs::remove_file(seg(&dir, 1, "idx")).expect("index");
    // A crash also tore the tail.
    let path = seg(&dir, 1, "entries");
    let mut bytes = std::fs::read(&path).expect("segment");
    let whole = bytes.len() as u64;
    bytes.extend_from_slice(&[90, 0, 0, 0, 1, 2, 3, 4, 2]);
    std::fs::write(&path, &bytes).expect("tear");
    // Read-only inspection skips and counts, and changes nothing.
    let kept = without(&written, &lost);
    let seen = wiremap_store::inspect(&dir).expect("inspects");
    assert_eq!(seen[0].entries, kept.len() as u64);
    assert_eq!(std::fs::read(&path).expect("segment"), bytes);
    assert!(!seg(&dir, 1, "idx").exists());
    let store = open(&dir);
    let s = store.stats();
    assert_eq!(s.torn_bytes_truncated, 9);
    assert_eq!((s.damaged_records, s.damaged_bytes), (1, len as u64));
    assert_eq!(std::fs::metadata(&path).expect("segment").len(), whole);
    assert_eq!(store.segments()[0].entries, kept.len() as u64);
    assert_eq!(all(&store), kept);
    // The recovered segment has its rollups again: the map from them counts what is left.
    assert!(seg(&dir, 1, "rollup").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_magic_quarantines_the_segment_and_the_rest_is_served() {
    for drop_index in [false, true] {
        let dir = tmpdir(&format!("magic-{drop_index}"));
        let written = build(&dir, 60, 9);
        let seqs: Vec<u64> = open(&dir).segments().iter().map(|m| m.seq).collect();
        assert!(seqs.len() >= 4, "{seqs:?}");
        let bad = seqs[1];
        let bad_ids = open(&dir).segments()[1].ids.expect("ids");
        let path = seg(&dir, bad, "entries");
        let mut bytes = std::fs::read(&path).expect("segment");
        bytes[3] ^= 0x20;
        std::fs::write(&path, &bytes).expect("damage");
        if drop_index {
            std::fs::remove_file(seg(&dir, bad, "idx")).expect("index");
        }
        // Read-only: the segment is skipped, nothing moves.
        let seen = wiremap_store::inspect(&dir).expect("inspects");
        assert_eq!(seen.len(), seqs.len() - 1);
        assert!(path.exists());
        let store = open(&dir);
        assert_eq!(store.stats().quarantined_segments, 1);
        assert!(!path.exists());
        let q = dir.join(QUARANTINE_DIR);
        assert!(q.join(format!("seg-{bad:010}.entries")).exists());
        assert!(q.join(format!("seg-{bad:010}.packets")).exists());
        let want: Vec<Entry> = written
            .iter()
            .filter(|e| e.id < bad_ids.0 || e.id > bad_ids.1)
            .cloned()
            .collect();
        assert_eq!(all(&store), want);
        // The export answers from the good segments.
        let mut out = Vec::new();
        let r = wiremap_store::export(
            store.dir(),
            &store.segments(),
            &Scope::default(),
            &|_| true,
            &mut out,
        )
        .expect("export");
        assert_eq!(r.packets as usize, 3 * want.len());
        // And the store goes on being written.
        drop(store);
        let mut store = open(&dir);
        let mut e = entry(100, None);
        store.append_entry(&mut e).expect("append");
        assert_eq!(e.id, written[written.len() - 1].id + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn stray_directories_and_foreign_files_do_not_stop_start_up() {
    let dir = tmpdir("stray");
    let written = build(&dir, 20, 1000);
    std::fs::create_dir(dir.join("seg-999.entries")).expect("dir");
    std::fs::create_dir(dir.join("seg-0000000999.entries")).expect("dir");
    std::fs::write(dir.join("notes.txt"), b"not a segment").expect("file");
    std::fs::write(dir.join("seg-0000000005.idx"), b"{garbage").expect("file");
    std::fs::write(dir.join("seg-7.entries"), b"WMSEG001").expect("file");
    assert_eq!(wiremap_store::inspect(&dir).expect("inspects").len(), 1);
    let mut store = open(&dir);
    assert_eq!(all(&store), written);
    let s = store.stats();
    assert_eq!((s.quarantined_segments, s.damaged_records), (0, 0));
    store.close_open().expect("closes");
    let mut e = entry(50, None);
    store.append_entry(&mut e).expect("append");
    store.flush().expect("flush");
    assert_eq!(all(&store).len(), 21);
    assert!(dir.join("seg-999.entries").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn half_written_index_and_rollup_files_are_removed_by_the_writer_only() {
    let dir = tmpdir("tmpfiles");
    let written = build(&dir, 20, 1000);
    let first = std::fs::read_dir(&dir)
        .expect("lists")
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".entries").map(str::to_string))
        .min()
        .expect("a segment");
    let leftovers = [
        dir.join(format!("{first}.rollup.tmp")),
        dir.join(format!("{first}.idx.tmp")),
    ];
    for f in &leftovers {
        std::fs::write(f, b"cut short").expect("file");
    }
    // A reader leaves them; the writer, which made them, cleans up.
    assert!(!wiremap_store::inspect(&dir).expect("inspects").is_empty());
    assert!(leftovers.iter().all(|f| f.exists()));
    let store = open(&dir);
    assert!(leftovers.iter().all(|f| !f.exists()));
    assert_eq!(all(&store), written);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_newer_store_is_refused_clearly() {
    let dir = tmpdir("newer");
    build(&dir, 5, 1000);
    let path = seg(&dir, 1, "entries");
    let mut bytes = std::fs::read(&path).expect("segment");
    bytes[..8].copy_from_slice(b"WMSEG003");
    std::fs::write(&path, &bytes).expect("write");
    match Store::open(StoreConfig::new(&dir)) {
        Err(e @ StoreError::NewerFormat { found: 3, .. }) => {
            assert!(e.to_string().contains("newer wiremap"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(path.exists(), "a newer store is left alone");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Packets of an export, by (source port, sequence number).
fn exported(out: Vec<u8>) -> Vec<(u16, u8)> {
    let mut src = FileSource::new("export", Box::new(std::io::Cursor::new(out))).expect("opens");
    let mut v = Vec::new();
    while src.advance().expect("reads") {
        let d = src.packet().data;
        v.push((u16::from_be_bytes([d[34], d[35]]), d[41]));
    }
    v
}

#[test]
fn export_skips_a_damaged_packet_frame_and_keeps_the_rest() {
    // A payload byte (the CRC fails), the length (the reader resynchronises).
    for (drop_index, field) in [(false, 40), (true, 40), (false, 0), (true, 0)] {
        let dir = tmpdir(&format!("packets-{drop_index}-{field}"));
        let written = build(&dir, 40, 1000);
        let path = seg(&dir, 1, "packets");
        let mut bytes = std::fs::read(&path).expect("packets");
        let frames = frames(&bytes);
        assert_eq!(frames.len(), 4);
        // The frame of entries 20 to 29.
        let (at, len) = frames[2];
        bytes[at + field] ^= 0x40;
        std::fs::write(&path, &bytes).expect("damage");
        if drop_index {
            std::fs::remove_file(seg(&dir, 1, "idx")).expect("index");
        }
        let store = open(&dir);
        assert_eq!(
            std::fs::metadata(&path).expect("packets").len(),
            bytes.len() as u64,
            "nothing cut after the damage"
        );
        assert_eq!(
            store.segments()[0].packets,
            90 + 30 * u64::from(!drop_index)
        );
        let mut out = Vec::new();
        let r = wiremap_store::export(
            store.dir(),
            &store.segments(),
            &Scope::default(),
            &|_| true,
            &mut out,
        )
        .expect("export");
        assert_eq!(r.entries as usize, written.len());
        let mut want: Vec<(u16, u8)> = (0..40u16)
            .flat_map(|i| (0..3u8).map(move |k| (1000 + i, k)))
            .collect();
        want.retain(|p| !(1020..1030).contains(&p.0));
        assert_eq!(exported(out), want);
        let s = store.stats();
        assert_eq!((s.damaged_records, s.damaged_bytes), (1, len as u64));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_torn_tail_of_both_files_is_cut_exactly() {
    let dir = tmpdir("torn");
    let written = build(&dir, 30, 1000);
    std::fs::remove_file(seg(&dir, 1, "idx")).expect("index");
    let mut lens = Vec::new();
    // The start of a frame as a crash mid-write leaves it: the first 13 bytes of one.
    let packets = std::fs::read(seg(&dir, 1, "packets")).expect("file");
    let frame_start = packets[8..21].to_vec();
    for (ext, tail) in [
        ("entries", &[77u8, 0, 0, 0, 9, 9, 9, 9, 2, 1, 1][..]),
        ("packets", &frame_start[..]),
    ] {
        let p = seg(&dir, 1, ext);
        let mut bytes = std::fs::read(&p).expect("file");
        lens.push(bytes.len() as u64);
        bytes.extend_from_slice(tail);
        std::fs::write(&p, &bytes).expect("tear");
    }
    let store = open(&dir);
    let s = store.stats();
    assert_eq!(s.torn_bytes_truncated, 11 + 13);
    assert_eq!((s.damaged_records, s.damaged_bytes), (0, 0));
    for (ext, len) in ["entries", "packets"].iter().zip(lens) {
        assert_eq!(
            std::fs::metadata(seg(&dir, 1, ext)).expect("file").len(),
            len
        );
    }
    assert_eq!(all(&store), written);
    assert_eq!(store.segments()[0].packets, 90);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_older_store_is_refused_with_how_to_import_again() {
    let dir = tmpdir("older");
    build(&dir, 5, 1000);
    let path = seg(&dir, 1, "entries");
    let mut bytes = std::fs::read(&path).expect("segment");
    bytes[..8].copy_from_slice(b"WMSEG001");
    std::fs::write(&path, &bytes).expect("write");
    match Store::open(StoreConfig::new(&dir)) {
        Err(e @ StoreError::OlderFormat { found: 1, .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("segment format 1") && m.contains("--pcap"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).expect("segment"), bytes, "left alone");
    let _ = std::fs::remove_dir_all(&dir);
}
