//! Reading back: maps (from the rollups or aggregated from the entries), pages of entries,
//! one entry, the highest id, table statistics, and retention.

use std::collections::BTreeSet;

use wiremap_kfl::{sql_quote, Filter};
use wiremap_map::{Bytes, Level, MapBuilder, Rollup, ServiceMap, Sketch, Stats};
use wiremap_model::{Endpoint, Entry, Protocol, Timestamp};

use crate::columns::{column_list, datetime_secs, parse_ip, read_entry, read_identity, SIDE_KEY};
use crate::http::Mode;
use crate::rowbinary::Reader;
use crate::schema::{
    rollup_columns, rollup_key_columns, Grain, CLIENT_ERROR, HOUR, MINUTE, SAMPLE,
};
use crate::{ClickHouse, Error};

/// Most entries one page returns.
pub const MAX_PAGE: usize = 10_000;

/// Rows and bytes the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries stored.
    pub entries: u64,
    /// Bytes of the entries on disk (compressed).
    pub entries_bytes: u64,
    /// Hourly partitions of the entries.
    pub entries_partitions: u64,
    /// Per-minute rollup rows (before the server merges them further).
    pub rollup_rows: u64,
    /// Bytes of the per-minute rollups on disk.
    pub rollup_bytes: u64,
    /// Hourly partitions of the per-minute rollups.
    pub rollup_partitions: u64,
    /// Hourly rollup rows (before the server merges them further).
    pub hourly_rows: u64,
    /// Bytes of the hourly rollups on disk.
    pub hourly_bytes: u64,
    /// Partitions (hours) of the hourly rollups.
    pub hourly_partitions: u64,
}

/// One partition dropped by retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPartition {
    /// `entries`, `edges_1m` or `edges_1h`.
    pub table: String,
    /// Start of its hour.
    pub hour: Timestamp,
    /// Rows it held.
    pub rows: u64,
}

/// The tables partitioned by hour, as an SQL list.
const TABLES: &str = "'entries', 'edges_1m', 'edges_1h'";

/// Backquoted identifiers in rendered SQL (string literals skipped): the columns it reads.
fn columns_read(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut chars = sql.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                let name: String = chars.by_ref().take_while(|c| *c != '`').collect();
                out.insert(name);
            }
            _ => {}
        }
    }
    out
}

/// `[from, to)` as conditions on the partition column and the exact time.
fn window(from: Timestamp, to: Timestamp) -> String {
    format!(
        "`ts` >= toDateTime({}) AND `ts` <= toDateTime({}) AND `timestamp` >= {} AND `timestamp` < {}",
        datetime_secs(from),
        datetime_secs(to),
        from.nanos(),
        to.nanos()
    )
}

/// A whole-minute window `[from, to)` (Unix seconds) cut into what each rollup table
/// answers: its whole hours from `edges_1h`, the minutes before the first and after the
/// last whole hour from `edges_1m`. Empty segments are left out.
fn segments(from: u32, to: u32) -> Vec<(Grain, u32, u32)> {
    let (from, to) = (u64::from(from), u64::from(to));
    let first_hour = from.div_ceil(3600) * 3600;
    let last_hour = to / 3600 * 3600;
    let cuts = if first_hour < last_hour {
        vec![
            (MINUTE, from, first_hour),
            (HOUR, first_hour, last_hour),
            (MINUTE, last_hour, to),
        ]
    } else {
        vec![(MINUTE, from, to)]
    };
    cuts.into_iter()
        .filter(|(_, a, b)| a < b)
        // Both ends came from u32 and are cut inside [from, to]: they fit.
        .map(|(g, a, b)| (g, a as u32, b as u32))
        .collect()
}

fn is_whole_minute(t: Timestamp) -> bool {
    t.nanos().rem_euclid(60_000_000_000) == 0
}

/// Which table answered a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSource {
    /// The rollups: whole hours from `edges_1h`, the minutes at the ends from `edges_1m`.
    Rollups,
    /// The entries, aggregated inside ClickHouse.
    Entries,
}

impl ClickHouse {
    fn read(&self, sql: &str, stop: &dyn Fn() -> bool) -> Result<Vec<u8>, Error> {
        self.client
            .run(sql, None, Mode::Read, self.cfg.max_reply_bytes, stop)
    }

    /// Where a map of `filter` over `[from, to)` would be answered from.
    pub fn map_source(
        &self,
        filter: Option<&Filter>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<MapSource, Error> {
        if !is_whole_minute(from) || !is_whole_minute(to) {
            return Ok(MapSource::Entries);
        }
        let Some(f) = filter else {
            return Ok(MapSource::Rollups);
        };
        let keys: BTreeSet<String> = rollup_key_columns().into_iter().collect();
        Ok(if columns_read(&f.to_sql()?).is_subset(&keys) {
            MapSource::Rollups
        } else {
            MapSource::Entries
        })
    }

    /// The map at `level` of the entries in `[from, to)` that `filter` selects, aggregated
    /// inside ClickHouse (one row per endpoint pair, protocol and capture node) and folded
    /// by [`MapBuilder`]. A filter with no SQL form is [`Error::Filter`]: the caller builds
    /// that map from [`ClickHouse::entries`] in Rust.
    pub fn map(
        &self,
        level: Level,
        filter: Option<&Filter>,
        from: Timestamp,
        to: Timestamp,
        stop: &dyn Fn() -> bool,
    ) -> Result<ServiceMap, Error> {
        let mut b = MapBuilder::new(level);
        if to > from {
            for r in self.rollups(filter, from, to, stop)? {
                b.add_rollup(&r);
            }
        }
        Ok(b.build(Stats::default()))
    }

    /// The aggregates behind [`ClickHouse::map`], ordered by their first entry.
    pub fn rollups(
        &self,
        filter: Option<&Filter>,
        from: Timestamp,
        to: Timestamp,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Rollup>, Error> {
        let cond = match filter {
            Some(f) => f.to_sql()?,
            None => "1".into(),
        };
        let source = self.map_source(filter, from, to)?;
        let db = self.db();
        let limit = self.cfg.max_map_rows;
        let mut select = Vec::new();
        let mut group = vec!["`protocol`".to_string(), "`node_name`".to_string()];
        for p in ["src", "dst"] {
            // The side's key columns; its resolution status is read after the labels.
            for c in SIDE_KEY.iter().filter(|c| **c != "resolution_status") {
                select.push(format!("`{p}_{c}`"));
                group.push(format!("`{p}_{c}`"));
            }
            group.push(format!("`{p}_resolution_status`"));
            match source {
                MapSource::Rollups => {
                    select.push(format!("any(`{p}_lkeys`)"));
                    select.push(format!("any(`{p}_lvalues`)"));
                    group.push(format!("`{p}_labels_hash`"));
                }
                MapSource::Entries => {
                    select.push(format!("any(`{p}_labels_keys`)"));
                    select.push(format!("any(`{p}_labels_values`)"));
                    group.push(format!("sipHash64(`{p}_labels_keys`, `{p}_labels_values`)"));
                }
            }
            select.push(format!("`{p}_resolution_status`"));
        }
        select.push("`protocol`".into());
        select.push("`node_name`".into());
        let sql = match source {
            MapSource::Rollups => {
                let cols = rollup_columns()
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                select.extend(
                    [
                        "countMerge(`requests`)",
                        "sumMerge(`responses`)",
                        "sumMerge(`errors`)",
                        "sumMerge(`client_errors`)",
                        "sumMerge(`request_bytes`)",
                        "sumMerge(`response_bytes`)",
                        "sumMerge(`latency_zeros`)",
                        "sumMapMerge(`latency`)",
                        "minMerge(`first_ts`) AS wm_first",
                        "maxMerge(`last_ts`)",
                        "groupUniqArrayArrayMerge(`seen_by`)",
                    ]
                    .map(String::from),
                );
                let parts = segments(datetime_secs(from), datetime_secs(to));
                if parts.is_empty() {
                    return Ok(Vec::new());
                }
                // The rows of every segment, merged together by one GROUP BY: a pair seen
                // in an hour and at a ragged end is one rollup.
                let inner: Vec<String> = parts
                    .iter()
                    .map(|(g, a, b)| {
                        format!(
                            "SELECT {cols} FROM {db}.{} WHERE `{t}` >= toDateTime({a}) \
                             AND `{t}` < toDateTime({b}) AND ({cond})",
                            g.table,
                            t = g.time
                        )
                    })
                    .collect();
                format!(
                    "SELECT {} FROM ({}) GROUP BY {} ORDER BY wm_first, `src_ip`, `dst_ip` \
                     LIMIT {} FORMAT RowBinary",
                    select.join(", "),
                    inner.join(" UNION ALL "),
                    group.join(", "),
                    limit + 1
                )
            }
            MapSource::Entries => {
                select.extend([
                    "count()".to_string(),
                    "sum(toUInt64(`has_response`))".into(),
                    "sum(toUInt64(`error`))".into(),
                    format!("sum({CLIENT_ERROR})"),
                    "sum(`request_size`)".into(),
                    "sum(`response_size`)".into(),
                    "sum(toUInt64(`has_response` != 0 AND `elapsed_time` <= 0))".into(),
                    format!(
                        "sumMap(if({SAMPLE}, [`lat_bucket`], emptyArrayInt32()), \
                         if({SAMPLE}, [toUInt64(1)], emptyArrayUInt64()))"
                    ),
                    "min(`timestamp`) AS wm_first".into(),
                    "max(`timestamp`)".into(),
                    "groupUniqArrayArray(`seen_by`)".into(),
                ]);
                format!(
                    "SELECT {} FROM {db}.entries WHERE {} AND ({cond}) GROUP BY {} \
                     ORDER BY wm_first, `src_ip`, `dst_ip` LIMIT {} FORMAT RowBinary",
                    select.join(", "),
                    window(from, to),
                    group.join(", "),
                    limit + 1
                )
            }
        };
        let reply = self.read(&sql, stop)?;
        let mut r = Reader::new(&reply);
        let mut out = Vec::new();
        while !r.is_empty() {
            if out.len() >= limit {
                return Err(Error::TooManyRows(limit));
            }
            out.push(read_rollup(&mut r)?);
        }
        Ok(out)
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) entries in `[from, to)` with ids above
    /// `after_id` that `filter` selects, by id. A filter with no SQL form is
    /// [`Error::Filter`]: the caller pages without it and filters in Rust.
    pub fn entries(
        &self,
        filter: Option<&Filter>,
        from: Timestamp,
        to: Timestamp,
        after_id: u64,
        limit: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Entry>, Error> {
        let cond = match filter {
            Some(f) => f.to_sql()?,
            None => "1".into(),
        };
        let limit = limit.min(MAX_PAGE);
        if limit == 0 || to <= from {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM {}.entries WHERE {} AND `id` > {after_id} AND ({cond}) \
             ORDER BY `id` LIMIT {limit} FORMAT RowBinary",
            column_list(),
            self.db(),
            window(from, to)
        );
        self.read_entries(&sql, limit, stop)
    }

    fn read_entries(
        &self,
        sql: &str,
        limit: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Entry>, Error> {
        let reply = self.read(sql, stop)?;
        let mut r = Reader::new(&reply);
        let mut out = Vec::new();
        while !r.is_empty() && out.len() < limit {
            out.push(read_entry(&mut r)?);
        }
        Ok(out)
    }

    /// The entry with id `id`.
    pub fn get(&self, id: u64, stop: &dyn Fn() -> bool) -> Result<Option<Entry>, Error> {
        let sql = format!(
            "SELECT {} FROM {}.entries WHERE `id` = {id} LIMIT 1 FORMAT RowBinary",
            column_list(),
            self.db()
        );
        Ok(self.read_entries(&sql, 1, stop)?.pop())
    }

    /// The highest id stored (0 when empty): ids continue from it after a restart.
    pub fn max_id(&self) -> Result<u64, Error> {
        let sql = format!(
            "SELECT max(`id`) FROM {}.entries LIMIT 1 FORMAT RowBinary",
            self.db()
        );
        let reply = self.read(&sql, &|| false)?;
        Reader::new(&reply).u64()
    }

    /// Rows, bytes on disk and partitions of both tables.
    pub fn stats(&self) -> Result<StoreStats, Error> {
        let sql = format!(
            "SELECT table, sum(rows), sum(bytes_on_disk), uniqExact(partition_id) \
             FROM system.parts WHERE database = {} AND table IN ({TABLES}) \
             AND active GROUP BY table LIMIT 10 FORMAT RowBinary",
            sql_quote(&self.cfg.database)
        );
        let reply = self.read(&sql, &|| false)?;
        let mut r = Reader::new(&reply);
        let mut s = StoreStats::default();
        while !r.is_empty() {
            let table = r.str()?;
            let (rows, bytes, parts) = (r.u64()?, r.u64()?, r.u64()?);
            let slot = match table.as_str() {
                "entries" => (
                    &mut s.entries,
                    &mut s.entries_bytes,
                    &mut s.entries_partitions,
                ),
                "edges_1m" => (
                    &mut s.rollup_rows,
                    &mut s.rollup_bytes,
                    &mut s.rollup_partitions,
                ),
                _ => (
                    &mut s.hourly_rows,
                    &mut s.hourly_bytes,
                    &mut s.hourly_partitions,
                ),
            };
            (*slot.0, *slot.1, *slot.2) = (rows, bytes, parts);
        }
        Ok(s)
    }

    /// Drops every hourly partition, of the entries and of both rollups, that ends at or
    /// before `cutoff` (18.16 has no TTL: retention is dropping whole partitions).
    pub fn drop_before(&self, cutoff: Timestamp) -> Result<Vec<DroppedPartition>, Error> {
        let sql = format!(
            "SELECT table, partition_id, sum(rows) FROM system.parts WHERE database = {} \
             AND table IN ({TABLES}) AND active GROUP BY table, partition_id \
             ORDER BY partition_id, table LIMIT 100000 FORMAT RowBinary",
            sql_quote(&self.cfg.database)
        );
        let reply = self.read(&sql, &|| false)?;
        let mut r = Reader::new(&reply);
        let end = datetime_secs(cutoff);
        let mut dropped = Vec::new();
        while !r.is_empty() {
            let (table, id, rows) = (r.str()?, r.str()?, r.u64()?);
            // Partition ids of an hourly DateTime key are the hour's Unix time.
            let hour: u32 = id
                .parse()
                .map_err(|_| Error::BadReply(format!("partition id {id:?}")))?;
            if u64::from(hour) + 3600 > u64::from(end) {
                continue;
            }
            if !["entries", MINUTE.table, HOUR.table].contains(&table.as_str()) {
                continue;
            }
            self.exec(
                &format!(
                    "ALTER TABLE {}.`{table}` DROP PARTITION ID '{hour}'",
                    self.db()
                ),
                &|| false,
            )?;
            dropped.push(DroppedPartition {
                table,
                hour: Timestamp::from_parts(i64::from(hour), 0),
                rows,
            });
        }
        Ok(dropped)
    }
}

fn read_endpoint(r: &mut Reader<'_>) -> Result<Endpoint, Error> {
    let ip = parse_ip(&r.str()?)?;
    Ok(Endpoint {
        ip,
        port: 0,
        identity: read_identity(r)?,
    })
}

fn read_rollup(r: &mut Reader<'_>) -> Result<Rollup, Error> {
    let src = read_endpoint(r)?;
    let dst = read_endpoint(r)?;
    let p = r.str()?;
    let protocol = Protocol::parse(&p).ok_or_else(|| Error::BadReply(format!("protocol {p:?}")))?;
    let node_name = r.str()?;
    let requests = r.u64()?;
    let responses = r.u64()?;
    let errors = r.u64()?;
    let client_errors = r.u64()?;
    let bytes = Bytes {
        request: r.u64()?,
        response: r.u64()?,
    };
    let zeros = r.u64()?;
    let buckets = r.i32s()?;
    let counts = r.u64s()?;
    if buckets.len() != counts.len() {
        return Err(Error::BadReply("latency buckets and counts differ".into()));
    }
    let latency = Sketch::from_parts(zeros, buckets.into_iter().zip(counts));
    let first = Timestamp(r.i64()?);
    let last = Timestamp(r.i64()?);
    let mut seen_by = r.strs()?;
    seen_by.sort();
    Ok(Rollup {
        src,
        dst,
        protocol,
        node_name,
        seen_by,
        requests,
        responses,
        errors,
        client_errors,
        bytes,
        latency,
        first,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_columns_a_condition_reads() {
        let got = columns_read(r"(`a` = 'x`y\'`z') AND has(`b_keys`, '\\') OR `a` > 1");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["a".to_string(), "b_keys".to_string()]
        );
    }

    #[test]
    fn windows_are_cut_into_whole_hours_and_ragged_minutes() {
        let cut = |a, b| {
            segments(a, b)
                .into_iter()
                .map(|(g, a, b)| (g.table, a, b))
                .collect::<Vec<_>>()
        };
        let h = 3600 * 500_000;
        assert_eq!(
            cut(h - 120, h + 7260),
            vec![
                ("edges_1m", h - 120, h),
                ("edges_1h", h, h + 7200),
                ("edges_1m", h + 7200, h + 7260)
            ]
        );
        assert_eq!(cut(h, h + 3600), vec![("edges_1h", h, h + 3600)]);
        assert_eq!(
            cut(h, h + 3660),
            vec![("edges_1h", h, h + 3600), ("edges_1m", h + 3600, h + 3660)]
        );
        // Within one hour, or across one boundary without a whole hour: minutes only.
        assert_eq!(cut(h + 60, h + 3540), vec![("edges_1m", h + 60, h + 3540)]);
        assert_eq!(cut(h - 60, h + 3540), vec![("edges_1m", h - 60, h + 3540)]);
        assert!(cut(h, h).is_empty());
        // Open windows (from 0 to the end of the DateTime range) need no u32 overflow.
        assert_eq!(cut(0, u32::MAX).len(), 2);
        assert_eq!(cut(0, u32::MAX)[0], ("edges_1h", 0, u32::MAX / 3600 * 3600));
    }

    #[test]
    fn windows_are_half_open_and_clamped() {
        let w = window(Timestamp(-5), Timestamp(60_000_000_000));
        assert!(w.contains("toDateTime(0)"), "{w}");
        assert!(w.contains("`timestamp` < 60000000000"), "{w}");
        assert!(is_whole_minute(Timestamp(120_000_000_000)));
        assert!(!is_whole_minute(Timestamp(120_000_000_001)));
    }
}
