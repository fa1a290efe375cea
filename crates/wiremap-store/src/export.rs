//! Export of a window or filter as one pcapng file, with the resolution history first: the
//! packets of the flows behind the matching entries, over the time those entries span
//! ([`export`]), or every stored packet of the window ([`export_all_until`]).

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::Path;

use wiremap_capture::PcapngWriter;
use wiremap_decode::{Decoder, Transport as L4};
use wiremap_model::{Entry, FlowKey, Timestamp, Transport};

use crate::{io, scan, scan_packets, seg_path, History, Scope, SegmentMeta, StoreError};

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ExportReport {
    /// Entries that matched.
    pub entries: u64,
    /// Flows behind them.
    pub flows: u64,
    /// Packets written.
    pub packets: u64,
    /// `stop` said so before the end: the file is cut short.
    pub stopped: bool,
}

/// Both directions of a flow under one key.
fn key(a: (IpAddr, u16), b: (IpAddr, u16), transport: Transport) -> FlowKey {
    FlowKey {
        transport,
        a_ip: a.0,
        a_port: a.1,
        b_ip: b.0,
        b_port: b.1,
    }
    .canonical()
}

/// Packets this long before a flow's first matching request still belong to it (handshakes).
const LEAD_NS: i64 = 1_000_000_000;
/// And this long after its last response started (the rest of the response).
const TAIL_NS: i64 = 200_000_000;

/// Writes the packets behind the entries of `segments` that lie in `scope` and satisfy
/// `matches` to `out` as pcapng, with their resolution history as custom blocks.
pub fn export(
    dir: &Path,
    segments: &[SegmentMeta],
    scope: &Scope,
    matches: &dyn Fn(&Entry) -> bool,
    out: impl Write,
) -> Result<ExportReport, StoreError> {
    export_until(dir, segments, scope, matches, &|| false, out)
}

/// [`export`] that gives up as soon as `stop` says so (a client gone, a shutdown, a time
/// limit): both the entry scan and the packet scan ask it as they go.
pub fn export_until(
    dir: &Path,
    segments: &[SegmentMeta],
    scope: &Scope,
    matches: &dyn Fn(&Entry) -> bool,
    stop: &dyn Fn() -> bool,
    out: impl Write,
) -> Result<ExportReport, StoreError> {
    let mut report = ExportReport::default();
    let mut history = History::default();
    let mut flows: HashMap<FlowKey, (i64, i64)> = HashMap::new();
    scan(dir, segments, scope, &mut |e| {
        if stop() {
            report.stopped = true;
            return ControlFlow::Break(());
        }
        if matches(&e) {
            report.entries += 1;
            history.add(&e);
            let k = key((e.src.ip, e.src.port), (e.dst.ip, e.dst.port), e.transport);
            // Saturating: the times are read back from store files.
            let from = e.timestamp.0.saturating_sub(LEAD_NS);
            let to = e
                .timestamp
                .0
                .saturating_add(e.elapsed_time.max(0).saturating_mul(1000))
                .saturating_add(TAIL_NS);
            flows
                .entry(k)
                .and_modify(|s| {
                    s.0 = s.0.min(from);
                    s.1 = s.1.max(to);
                })
                .or_insert((from, to));
        }
        ControlFlow::Continue(())
    })?;
    report.flows = flows.len() as u64;
    let lo = flows.values().map(|s| s.0).min();
    let hi = flows.values().map(|s| s.1).max();
    let mut decoder = Decoder::new();
    let span = lo.zip(hi).map(|(lo, hi)| Timestamp(lo)..=Timestamp(hi));
    write(
        dir,
        segments,
        &history,
        span,
        stop,
        out,
        &mut report,
        &mut |ts, link, data| {
            let Ok(Some(seg)) = decoder.decode(ts, link.0, data) else {
                return false;
            };
            let k = match &seg.transport {
                L4::Tcp(t) => key((seg.src, t.src_port), (seg.dst, t.dst_port), Transport::Tcp),
                L4::Udp {
                    src_port, dst_port, ..
                } => key((seg.src, *src_port), (seg.dst, *dst_port), Transport::Udp),
                L4::Other(_) => return false,
            };
            flows.get(&k).is_some_and(|s| s.0 <= ts.0 && ts.0 <= s.1)
        },
    )?;
    Ok(report)
}

/// Writes every stored packet of the window `scope` — all the traffic, whether or not an
/// entry came of it (TLS application data, unrecognised or unanswered flows, ARP) — with the
/// resolution history of the window's entries; gives up when `stop` says so.
pub fn export_all_until(
    dir: &Path,
    segments: &[SegmentMeta],
    scope: &Scope,
    stop: &dyn Fn() -> bool,
    out: impl Write,
) -> Result<ExportReport, StoreError> {
    let mut report = ExportReport::default();
    let mut history = History::default();
    let window = Scope {
        from: scope.from,
        to: scope.to,
        ..Scope::default()
    };
    scan(dir, segments, &window, &mut |e| {
        if stop() {
            report.stopped = true;
            return ControlFlow::Break(());
        }
        report.entries += 1;
        history.add(&e);
        ControlFlow::Continue(())
    })?;
    let span = scope.from.unwrap_or(Timestamp(i64::MIN))..=scope.to.unwrap_or(Timestamp(i64::MAX));
    let keep = span.clone();
    write(
        dir,
        segments,
        &history,
        Some(span),
        stop,
        out,
        &mut report,
        &mut |ts, _, _| keep.contains(&ts),
    )?;
    Ok(report)
}

/// Writes the history, then the stored packets within `span` (none when `None`) that `keep`
/// takes, segment by segment.
#[allow(clippy::too_many_arguments)]
fn write(
    dir: &Path,
    segments: &[SegmentMeta],
    history: &History,
    span: Option<std::ops::RangeInclusive<Timestamp>>,
    stop: &dyn Fn() -> bool,
    out: impl Write,
    report: &mut ExportReport,
    keep: &mut dyn FnMut(Timestamp, wiremap_capture::LinkType, &[u8]) -> bool,
) -> Result<(), StoreError> {
    let target = Path::new("export");
    let mut w = PcapngWriter::new(out).map_err(io(target))?;
    for b in history.blocks() {
        w.custom(&b).map_err(io(target))?;
    }
    if let Some(span) = span {
        let mut failed = None;
        for m in segments {
            if report.stopped {
                break;
            }
            let (Some(f), Some(t)) = (m.from, m.to) else {
                continue;
            };
            if t < span.start().0 || f > span.end().0 || m.packets == 0 {
                continue;
            }
            let path = seg_path(dir, m.seq, "packets");
            // Damaged frames are skipped inside, and frames outside the span are not even
            // decompressed; a file that cannot be read is skipped whole.
            let read = scan_packets(
                &path,
                m.closed,
                span.clone(),
                &mut |ts, link, data, orig| {
                    if stop() {
                        report.stopped = true;
                        return ControlFlow::Break(());
                    }
                    if keep(ts, link, data) {
                        if let Err(e) = w.write(ts, link, data, orig) {
                            failed = Some(e);
                            return ControlFlow::Break(());
                        }
                        report.packets += 1;
                    }
                    ControlFlow::Continue(())
                },
            );
            if let Some(e) = failed.take() {
                return Err(io(target)(e));
            }
            if let Err(e) = read {
                crate::damage::unreadable(&path, &e);
            }
        }
    }
    w.finish().map_err(io(target))?;
    Ok(())
}
