//! Reading back: maps (from the rollups or aggregated from the entries), pages of entries,
//! one entry, the highest id, table statistics, and retention.

use std::collections::BTreeSet;

use wiremap_kfl::{sql_quote, Filter};
use wiremap_map::{Bytes, Level, MapBuilder, Rollup, ServiceMap, Sketch, Stats};
use wiremap_model::{Endpoint, Entry, Protocol, Timestamp};

use crate::columns::{column_list, datetime_secs, parse_ip, read_entry, read_identity};
use crate::http::Mode;
use crate::rowbinary::Reader;
use crate::schema::{rollup_key_columns, SAMPLE};
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
    /// Rollup rows (before the server merges them further).
    pub rollup_rows: u64,
    /// Bytes of the rollups on disk.
    pub rollup_bytes: u64,
    /// Hourly partitions of the rollups.
    pub rollup_partitions: u64,
}

/// One partition dropped by retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPartition {
    /// `entries` or `edges_1m`.
    pub table: String,
    /// Start of its hour.
    pub hour: Timestamp,
    /// Rows it held.
    pub rows: u64,
}

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

fn is_whole_minute(t: Timestamp) -> bool {
    t.nanos().rem_euclid(60_000_000_000) == 0
}

/// Which table answered a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSource {
    /// The per-minute rollups.
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
            for c in [
                "ip",
                "identity",
                "kind",
                "name",
                "namespace",
                "dns",
                "zone",
                "pod",
                "service",
                "workload_kind",
                "workload_name",
                "node",
            ] {
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
                select.extend(
                    [
                        "countMerge(`requests`)",
                        "sumMerge(`responses`)",
                        "sumMerge(`errors`)",
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
                format!(
                    "SELECT {} FROM {db}.edges_1m WHERE `minute` >= toDateTime({}) AND `minute` < toDateTime({}) \
                     AND ({cond}) GROUP BY {} ORDER BY wm_first, `src_ip`, `dst_ip` LIMIT {} FORMAT RowBinary",
                    select.join(", "),
                    datetime_secs(from),
                    datetime_secs(to),
                    group.join(", "),
                    limit + 1
                )
            }
            MapSource::Entries => {
                select.extend([
                    "count()".to_string(),
                    "sum(toUInt64(`has_response`))".into(),
                    "sum(toUInt64(`error`))".into(),
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
             FROM system.parts WHERE database = {} AND table IN ('entries', 'edges_1m') \
             AND active GROUP BY table LIMIT 10 FORMAT RowBinary",
            sql_quote(&self.cfg.database)
        );
        let reply = self.read(&sql, &|| false)?;
        let mut r = Reader::new(&reply);
        let mut s = StoreStats::default();
        while !r.is_empty() {
            let table = r.str()?;
            let (rows, bytes, parts) = (r.u64()?, r.u64()?, r.u64()?);
            if table == "entries" {
                (s.entries, s.entries_bytes, s.entries_partitions) = (rows, bytes, parts);
            } else {
                (s.rollup_rows, s.rollup_bytes, s.rollup_partitions) = (rows, bytes, parts);
            }
        }
        Ok(s)
    }

    /// Drops every hourly partition, of the entries and of the rollups, that ends at or
    /// before `cutoff` (18.16 has no TTL: retention is dropping whole partitions).
    pub fn drop_before(&self, cutoff: Timestamp) -> Result<Vec<DroppedPartition>, Error> {
        let sql = format!(
            "SELECT table, partition_id, sum(rows) FROM system.parts WHERE database = {} \
             AND table IN ('entries', 'edges_1m') AND active GROUP BY table, partition_id \
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
            if table != "entries" && table != "edges_1m" {
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
    fn windows_are_half_open_and_clamped() {
        let w = window(Timestamp(-5), Timestamp(60_000_000_000));
        assert!(w.contains("toDateTime(0)"), "{w}");
        assert!(w.contains("`timestamp` < 60000000000"), "{w}");
        assert!(is_whole_minute(Timestamp(120_000_000_000)));
        assert!(!is_whole_minute(Timestamp(120_000_000_001)));
    }
}
