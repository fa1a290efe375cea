//! Real streams for dissector tests: each flow of a shared capture as the ordered runs of
//! bytes the reassembler delivered, replayable into a fresh dissector in any chunking.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use wiremap_capture::{FileSource, PacketSource};
use wiremap_decode::{Decoder, Transport as L4};
use wiremap_dissect::{Dissect, DissectConfig};
use wiremap_model::{Direction, Entry, Timestamp};
use wiremap_reassembly::{CloseReason, FlowInfo, FlowTable, Limits, StreamHandler};

pub fn pcaps() -> PathBuf {
    let dir = match std::env::var_os("WIREMAP_PCAPS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps"),
    };
    assert!(
        dir.is_dir(),
        "shared captures not found at {} (set WIREMAP_PCAPS)",
        dir.display()
    );
    dir
}

/// One flow: its info and the runs of bytes per direction, in delivery order.
pub struct Flow {
    pub info: FlowInfo,
    pub runs: Vec<(Direction, Timestamp, Vec<u8>)>,
}

#[derive(Default)]
struct Recorder {
    flows: BTreeMap<u64, Flow>,
}

impl StreamHandler for Recorder {
    type Session = ();
    fn open(&mut self, info: &FlowInfo) {
        self.flows.insert(
            info.id,
            Flow {
                info: info.clone(),
                runs: Vec::new(),
            },
        );
    }
    fn data(&mut self, _: &mut (), info: &FlowInfo, dir: Direction, ts: Timestamp, data: &[u8]) {
        let Some(f) = self.flows.get_mut(&info.id) else {
            return;
        };
        f.info = info.clone();
        match f.runs.last_mut() {
            Some((d, _, bytes))
                if *d == dir && info.key.transport == wiremap_model::Transport::Tcp =>
            {
                bytes.extend_from_slice(data)
            }
            _ => f.runs.push((dir, ts, data.to_vec())),
        }
    }
    fn gap(&mut self, _: &mut (), _: &FlowInfo, _: Direction, _: Timestamp, _: u64) {}
    fn close(&mut self, _: (), info: &FlowInfo, _: Timestamp, _: CloseReason) {
        if let Some(f) = self.flows.get_mut(&info.id) {
            f.info = info.clone();
        }
    }
}

/// Every flow of a shared capture.
pub fn flows(capture: &str) -> Vec<Flow> {
    let path = pcaps().join(capture);
    let mut src = FileSource::open(path.to_str().expect("utf8")).expect("capture opens");
    let mut dec = Decoder::new();
    let mut table = FlowTable::new(Limits::default());
    let mut rec = Recorder::default();
    let mut last = Timestamp(0);
    // A capture cut short in its last record is read up to there, as the command line does.
    while match src.advance() {
        Ok(more) => more,
        Err(e) if e.is_truncated_tail() => false,
        Err(e) => panic!("capture reads: {e}"),
    } {
        let p = src.packet();
        last = p.ts;
        if let Ok(Some(seg)) = dec.decode(p.ts, p.link.0, p.data) {
            match seg.transport {
                L4::Tcp(t) => table.tcp(&mut rec, p.ts, seg.src, seg.dst, &t),
                L4::Udp {
                    src_port,
                    dst_port,
                    payload,
                } => table.udp(
                    &mut rec,
                    p.ts,
                    (seg.src, src_port),
                    (seg.dst, dst_port),
                    payload,
                ),
                L4::Other(_) => {}
            }
        }
    }
    table.finish(&mut rec, last);
    rec.flows
        .into_values()
        .filter(|f| !f.runs.is_empty())
        .collect()
}

/// Replays `chunks` into a fresh dissector and returns its entries.
pub fn replay(info: &FlowInfo, chunks: &[(Direction, Timestamp, &[u8])]) -> Vec<Entry> {
    let mut d = Dissect::new(DissectConfig::default());
    let mut s = d.open(info);
    let mut last = info.first_ts;
    for (dir, ts, bytes) in chunks {
        d.data(&mut s, info, *dir, *ts, bytes);
        last = *ts;
    }
    d.close(s, info, last, CloseReason::Fin);
    std::mem::take(&mut d.output().entries)
}

/// The flow as delivered: one chunk per run.
pub fn whole(f: &Flow) -> Vec<(Direction, Timestamp, &[u8])> {
    f.runs
        .iter()
        .map(|(d, t, b)| (*d, *t, b.as_slice()))
        .collect()
}

/// Bytes one flow's split and prefix checks may replay in all: a small flow is cut at every
/// point, a large one (hundreds of KiB) at a sample, so the check stays linear in practice.
const REPLAY_BUDGET: usize = 64 << 20;

/// Keeps at most `budget` of `points` (each `(run, offset)`): every point within the first
/// bytes of a run (where headers and lengths are cut), then an even sample of the rest.
fn sample(points: Vec<(usize, usize)>, budget: usize) -> Vec<(usize, usize)> {
    if points.len() <= budget {
        return points;
    }
    let (head, rest): (Vec<_>, Vec<_>) = points.into_iter().partition(|(_, k)| *k <= 8);
    let room = budget.saturating_sub(head.len()).max(1);
    let stride = rest.len().div_ceil(room);
    head.into_iter()
        .chain(rest.into_iter().step_by(stride.max(1)))
        .collect()
}

/// Asserts that cutting any run at any point (every `step`-th point past the first 2 KiB;
/// sampled when the flow is large, see [`REPLAY_BUDGET`]) gives the same entries, and that
/// every prefix of the flow is handled without panic.
pub fn every_split_and_prefix(f: &Flow) -> Vec<Entry> {
    let base = replay(&f.info, &whole(f));
    let tcp = f.info.key.transport == wiremap_model::Transport::Tcp;
    let flow_len: usize = f.runs.iter().map(|(_, _, b)| b.len()).sum();
    let budget = (REPLAY_BUDGET / flow_len.max(1)).max(256);
    let splits: Vec<(usize, usize)> = if tcp {
        f.runs
            .iter()
            .enumerate()
            .flat_map(|(r, (_, _, bytes))| {
                (1..bytes.len())
                    .filter(|k| *k < 2048 || k % 61 == 0)
                    .map(move |k| (r, k))
            })
            .collect()
    } else {
        Vec::new()
    };
    for (r, k) in sample(splits, budget) {
        let (dir, ts, bytes) = &f.runs[r];
        let mut chunks = whole(f);
        chunks.splice(r..=r, [(*dir, *ts, &bytes[..k]), (*dir, *ts, &bytes[k..])]);
        let got = replay(&f.info, &chunks);
        let brief = |es: &[Entry]| {
            es.iter()
                .map(|e| (e.protocol, e.src.port, e.status_code, e.has_response))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got,
            base,
            "run {r} split at {k}: {:?} vs {:?}",
            brief(&got),
            brief(&base)
        );
    }
    // Prefixes: the flow cut short anywhere in its last run.
    let prefixes: Vec<(usize, usize)> = f
        .runs
        .iter()
        .enumerate()
        .flat_map(|(r, (_, _, bytes))| {
            (0..bytes.len())
                .filter(|k| *k < 512 || k % 97 == 0)
                .map(move |k| (r, k))
        })
        .collect();
    for (r, k) in sample(prefixes, budget) {
        let (dir, ts, bytes) = &f.runs[r];
        let mut chunks: Vec<(Direction, Timestamp, &[u8])> = f.runs[..r]
            .iter()
            .map(|(d, t, b)| (*d, *t, b.as_slice()))
            .collect();
        chunks.push((*dir, *ts, &bytes[..k]));
        let got = replay(&f.info, &chunks);
        assert!(
            got.len() <= base.len() + 1,
            "prefix run {r} at {k}: {} entries vs {}",
            got.len(),
            base.len()
        );
    }
    base
}

/// Runs a built conversation (client is side A, the server listens on `server_port`) through
/// a fresh dissector: its entries and counters.
/// A TCP flow from 10.0.0.1:40000 to 10.0.0.2:`server_port`, its opening seen.
pub fn tcp_flow(server_port: u16) -> FlowInfo {
    use std::net::{IpAddr, Ipv4Addr};
    FlowInfo::new(
        1,
        wiremap_model::FlowKey {
            transport: wiremap_model::Transport::Tcp,
            a_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            a_port: 40000,
            b_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            b_port: server_port,
        },
        true,
        Timestamp(0),
    )
}

pub fn converse(
    cfg: DissectConfig,
    server_port: u16,
    conv: &[(Direction, Vec<u8>)],
) -> (Vec<Entry>, wiremap_dissect::DissectStats) {
    let info = tcp_flow(server_port);
    let steps: Vec<Step> = conv
        .iter()
        .map(|(d, b)| Step::Data(*d, b.clone()))
        .collect();
    converse_steps(cfg, info, &steps)
}

/// One step of a built conversation: bytes, or bytes lost.
pub enum Step {
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
}

/// Runs `steps` through a fresh dissector for flow `info`.
pub fn converse_steps(
    cfg: DissectConfig,
    info: FlowInfo,
    steps: &[Step],
) -> (Vec<Entry>, wiremap_dissect::DissectStats) {
    let mut d = Dissect::new(cfg);
    let mut s = d.open(&info);
    for (i, step) in steps.iter().enumerate() {
        let ts = Timestamp(i as i64 + 1);
        match step {
            Step::Data(dir, bytes) => d.data(&mut s, &info, *dir, ts, bytes),
            Step::Gap(dir, len) => d.gap(&mut s, &info, *dir, ts, *len),
        }
    }
    d.close(s, &info, Timestamp(1_000_000), CloseReason::Fin);
    let entries = std::mem::take(&mut d.output().entries);
    (entries, d.stats().clone())
}

/// An HTTP/2 frame: type, flags, stream id and payload.
pub fn h2_frame(ty: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&sid.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A header block of literal fields without indexing (no Huffman, names and values under
/// 128 bytes).
pub fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(0x00);
        b.push(n.len() as u8);
        b.extend_from_slice(n.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
    }
    b
}
