//! The schema and its migrations.
//!
//! Each migration is a numbered list of statements; `schema_version` records what was
//! applied. Statements are idempotent (`IF NOT EXISTS`), so a start that died half-way
//! through a migration simply runs it again. A database whose version is newer than this
//! binary knows is refused: an older binary must not write into a layout it does not know.

use wiremap_kfl::sql_quote;

use crate::columns::{entry_columns, SIDE_KEY};
use crate::http::Mode;
use crate::{ClickHouse, Error};

/// The version this binary writes.
pub const SCHEMA_VERSION: u32 = 3;

/// A rollup table: its name, time column and how that column is computed from an entry's
/// `ts`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grain {
    pub table: &'static str,
    pub time: &'static str,
    expr: &'static str,
}

/// Per minute (schema 1).
pub(crate) const MINUTE: Grain = Grain {
    table: "edges_1m",
    time: "minute",
    expr: "toStartOfMinute(`ts`)",
};

/// Per hour (schema 2). Hours are cut by arithmetic on the Unix time, not `toStartOfHour`,
/// whose result follows the server's time zone (half-hour zones exist): the reader computes
/// the same boundaries in Rust.
pub(crate) const HOUR: Grain = Grain {
    table: "edges_1h",
    time: "hour",
    expr: "toDateTime(intDiv(toUInt32(`ts`), 3600) * 3600)",
};

/// Columns that name the two endpoints of an edge, protocol and node: the rollups' key, and
/// what a filter may read for a map to be answered from the rollups.
pub(crate) fn rollup_key_columns() -> Vec<String> {
    let mut v = vec!["protocol".to_string(), "node_name".to_string()];
    for p in ["src", "dst"] {
        v.extend(SIDE_KEY.iter().map(|c| format!("{p}_{c}")));
    }
    v
}

/// Every column of a rollup table but its time, in table order.
pub(crate) fn rollup_columns() -> Vec<String> {
    let mut v = rollup_key_columns();
    for p in ["src", "dst"] {
        v.extend(["labels_hash", "lkeys", "lvalues"].map(|c| format!("{p}_{c}")));
    }
    v.extend(STATE_COLUMNS.iter().map(|c| c.to_string()));
    v
}

fn side_type(col: &str) -> &'static str {
    entry_columns()
        .into_iter()
        .find(|(n, _)| n == col)
        .map_or("String", |(_, t)| t)
}

fn entries_ddl(db: &str) -> String {
    let cols: Vec<String> = entry_columns()
        .iter()
        .map(|(n, t)| format!("`{n}` {t}"))
        .collect();
    // Hourly partitions: retention drops whole hours; time first in the sort key because
    // every query is bounded in time.
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.entries ({}) ENGINE = MergeTree \
         PARTITION BY toStartOfHour(ts) ORDER BY (ts, id)",
        cols.join(", ")
    )
}

fn rollup_ddl(db: &str, g: Grain) -> String {
    let mut cols = vec![format!("`{}` DateTime", g.time)];
    let mut order = vec![g.time.to_string()];
    for c in rollup_key_columns() {
        cols.push(format!("`{c}` {}", side_type(&c)));
        order.push(c);
    }
    for p in ["src", "dst"] {
        cols.push(format!("`{p}_labels_hash` UInt64"));
        cols.push(format!("`{p}_lkeys` Array(String)"));
        cols.push(format!("`{p}_lvalues` Array(String)"));
        order.push(format!("{p}_labels_hash"));
    }
    for (c, t) in [
        ("requests", "AggregateFunction(count)"),
        ("responses", "AggregateFunction(sum, UInt64)"),
        ("errors", "AggregateFunction(sum, UInt64)"),
        (CLIENT_ERRORS.0, CLIENT_ERRORS.1),
        ("request_bytes", "AggregateFunction(sum, UInt64)"),
        ("response_bytes", "AggregateFunction(sum, UInt64)"),
        ("latency_zeros", "AggregateFunction(sum, UInt64)"),
        (
            "latency",
            "AggregateFunction(sumMap, Array(Int32), Array(UInt64))",
        ),
        ("first_ts", "AggregateFunction(min, Int64)"),
        ("last_ts", "AggregateFunction(max, Int64)"),
        (
            "seen_by",
            "AggregateFunction(groupUniqArrayArray, Array(String))",
        ),
    ] {
        cols.push(format!("`{c}` {t}"));
    }
    let order: Vec<String> = order.iter().map(|c| format!("`{c}`")).collect();
    // Both grains partition by hour (the partition id is the hour's Unix time), so
    // retention drops them with the entries.
    let partition = match g.time {
        "hour" => "`hour`",
        _ => "toStartOfHour(`minute`)",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} ({}) ENGINE = AggregatingMergeTree \
         PARTITION BY {partition} PRIMARY KEY (`{}`, `protocol`) ORDER BY ({})",
        g.table,
        cols.join(", "),
        g.time,
        order.join(", ")
    )
}

/// What one entry adds to its edge's rollup (also used to aggregate entries directly).
pub(crate) const SAMPLE: &str = "`has_response` != 0 AND `elapsed_time` > 0";

/// An entry answered with an HTTP 4xx: `Entry::client_error` in SQL.
pub(crate) const CLIENT_ERROR: &str = "toUInt64(`protocol` IN ('http', 'gql') \
     AND `has_response` != 0 AND `status_code` >= 400 AND `status_code` < 500)";

/// The rollups' count of HTTP 4xx (schema 3): name, type, and the column it follows.
const CLIENT_ERRORS: (&str, &str) = ("client_errors", "AggregateFunction(sum, UInt64)");

fn view_ddl(db: &str, g: Grain) -> String {
    let keys: Vec<String> = rollup_key_columns()
        .iter()
        .map(|c| format!("`{c}`"))
        .collect();
    let mut select = vec![format!("{} AS `{}`", g.expr, g.time)];
    select.extend(keys.iter().cloned());
    let mut group = vec![format!("`{}`", g.time)];
    group.extend(keys.iter().cloned());
    for p in ["src", "dst"] {
        select.push(format!(
            "sipHash64(`{p}_labels_keys`, `{p}_labels_values`) AS `{p}_labels_hash`"
        ));
        // Rows of one key have one label set (its hash is in the key): any() is it.
        select.push(format!("any(`{p}_labels_keys`) AS `{p}_lkeys`"));
        select.push(format!("any(`{p}_labels_values`) AS `{p}_lvalues`"));
        group.push(format!("`{p}_labels_hash`"));
    }
    select.extend([
        "countState() AS `requests`".to_string(),
        "sumState(toUInt64(`has_response`)) AS `responses`".into(),
        "sumState(toUInt64(`error`)) AS `errors`".into(),
        format!("sumState({CLIENT_ERROR}) AS `client_errors`"),
        "sumState(`request_size`) AS `request_bytes`".into(),
        "sumState(`response_size`) AS `response_bytes`".into(),
        "sumState(toUInt64(`has_response` != 0 AND `elapsed_time` <= 0)) AS `latency_zeros`".into(),
        format!(
            "sumMapState(if({SAMPLE}, [`lat_bucket`], emptyArrayInt32()), \
             if({SAMPLE}, [toUInt64(1)], emptyArrayUInt64())) AS `latency`"
        ),
        "minState(`timestamp`) AS `first_ts`".into(),
        "maxState(`timestamp`) AS `last_ts`".into(),
        "groupUniqArrayArrayState(`seen_by`) AS `seen_by`".into(),
    ]);
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv TO {db}.{t} AS \
         SELECT {} FROM {db}.entries GROUP BY {}",
        select.join(", "),
        group.join(", "),
        t = g.table
    )
}

/// The aggregate state columns of both rollup tables, in table order.
const STATES: &[&str] = &[
    "count",
    "sum",
    "sum",
    "sum",
    "sum",
    "sum",
    "sum",
    "sumMap",
    "min",
    "max",
    "groupUniqArrayArray",
];
const STATE_COLUMNS: &[&str] = &[
    "requests",
    "responses",
    "errors",
    "client_errors",
    "request_bytes",
    "response_bytes",
    "latency_zeros",
    "latency",
    "first_ts",
    "last_ts",
    "seen_by",
];

/// Hours of `edges_1m` written before the hourly rollups existed, merged into `edges_1h`:
/// one hour (one partition) per statement, so memory stays that of an hour. The states are
/// re-aggregated (`-MergeState`), which is exactly what merging them later would give.
/// Sorted, because an aggregation over many keys streams out in up to 256 blocks and each
/// block inserted is a part of its own (a full day of minutes unsorted made about 200 parts
/// an hour, which the server then merges and a drop deletes file by file); sorted rows come
/// in blocks of `max_block_size`.
fn backfill_sql(db: &str, hour: u32) -> String {
    let keys: Vec<String> = rollup_key_columns()
        .iter()
        .map(|c| format!("`{c}`"))
        .collect();
    let mut cols =
        vec!["toDateTime(intDiv(toUInt32(`minute`), 3600) * 3600) AS `hour`".to_string()];
    cols.extend(keys.iter().cloned());
    let mut group = vec!["`hour`".to_string()];
    group.extend(keys.iter().cloned());
    for p in ["src", "dst"] {
        cols.push(format!("`{p}_labels_hash`"));
        cols.push(format!("any(`{p}_lkeys`)"));
        cols.push(format!("any(`{p}_lvalues`)"));
        group.push(format!("`{p}_labels_hash`"));
    }
    for (f, c) in STATES.iter().zip(STATE_COLUMNS) {
        cols.push(format!("{f}MergeState(`{c}`)"));
    }
    format!(
        "INSERT INTO {db}.edges_1h SELECT {} FROM {db}.edges_1m \
         WHERE `minute` >= toDateTime({hour}) AND `minute` < toDateTime({}) GROUP BY {} \
         ORDER BY {}",
        cols.join(", "),
        u64::from(hour) + 3600,
        group.join(", "),
        group.join(", ")
    )
}

/// One step of a migration.
#[derive(Debug)]
enum Step {
    /// A statement that may run again (`IF NOT EXISTS`).
    Sql(String),
    /// Fill `edges_1h` from `edges_1m`: see [`ClickHouse::backfill_hours`].
    BackfillHours,
    /// Adds `client_errors` after `errors` to a rollup table that lacks it (18.16 has no
    /// `ADD COLUMN IF NOT EXISTS`). Rows written before count no 4xx: a state column added
    /// later reads as the empty state in older parts.
    AddClientErrors(&'static str),
}

/// Steps of each migration, oldest first; migration `i` brings the schema to `i + 1`.
fn migrations(db: &str) -> Vec<Vec<Step>> {
    vec![
        vec![
            Step::Sql(entries_ddl(db)),
            Step::Sql(rollup_ddl(db, MINUTE)),
            Step::Sql(view_ddl(db, MINUTE)),
        ],
        // The hourly view is created after the backfill: entries inserted from then on go
        // through it, those before came in through edges_1m. (A second writer inserting
        // during the backfill would be missing from the hours; the hub migrates before it
        // writes.) The minute table gets schema 3's column first: the backfill copies every
        // state column of the current layout.
        vec![
            Step::AddClientErrors(MINUTE.table),
            Step::BackfillHours,
            Step::Sql(view_ddl(db, HOUR)),
        ],
        // HTTP 4xx counted apart: a column in both tables, and views that fill it (a view's
        // query cannot be altered in 18.16: dropped and made again, before any writes).
        vec![
            Step::AddClientErrors(MINUTE.table),
            Step::AddClientErrors(HOUR.table),
            Step::Sql(format!("DROP TABLE IF EXISTS {db}.{}_mv", MINUTE.table)),
            Step::Sql(view_ddl(db, MINUTE)),
            Step::Sql(format!("DROP TABLE IF EXISTS {db}.{}_mv", HOUR.table)),
            Step::Sql(view_ddl(db, HOUR)),
        ],
    ]
}

impl ClickHouse {
    /// Creates the database and brings its schema to [`SCHEMA_VERSION`].
    pub(crate) fn migrate(&self) -> Result<(), Error> {
        let db = self.db();
        let never = &|| false;
        self.exec(&format!("CREATE DATABASE IF NOT EXISTS {db}"), never)?;
        self.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_version \
                 (version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version"
            ),
            never,
        )?;
        let reply = self.client.run(
            &format!("SELECT max(version) FROM {db}.schema_version FORMAT TabSeparated"),
            None,
            Mode::Read,
            64,
            never,
        )?;
        let found: u32 = String::from_utf8_lossy(&reply)
            .trim()
            .parse()
            .map_err(|_| Error::BadReply("schema version".into()))?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, statements) in migrations(&db).into_iter().enumerate() {
            let version = i as u32 + 1;
            if version <= found {
                continue;
            }
            for s in statements {
                match s {
                    Step::Sql(s) => self.exec(&s, never)?,
                    Step::BackfillHours => self.backfill_hours()?,
                    Step::AddClientErrors(table) => self.add_client_errors(table)?,
                }
            }
            self.exec(
                &format!("INSERT INTO {db}.schema_version VALUES ({version}, now())"),
                never,
            )?;
        }
        Ok(())
    }

    /// Adds the `client_errors` column to `table` unless it has it.
    fn add_client_errors(&self, table: &str) -> Result<(), Error> {
        let db = self.db();
        let never = &|| false;
        let reply = self.client.run(
            &format!(
                "SELECT count() FROM system.columns WHERE database = {} AND table = {} \
                 AND name = {} FORMAT TabSeparated",
                sql_quote(&self.cfg.database),
                sql_quote(table),
                sql_quote(CLIENT_ERRORS.0)
            ),
            None,
            Mode::Read,
            64,
            never,
        )?;
        if String::from_utf8_lossy(&reply).trim() != "0" {
            return Ok(());
        }
        self.exec(
            &format!(
                "ALTER TABLE {db}.{table} ADD COLUMN `{}` {} AFTER `errors`",
                CLIENT_ERRORS.0, CLIENT_ERRORS.1
            ),
            never,
        )
    }

    /// Creates `edges_1h` and fills it from `edges_1m`, unless its view exists (then the
    /// backfill finished before). A start that died half-way through left a partial table:
    /// it is dropped and filled again, so nothing is counted twice.
    fn backfill_hours(&self) -> Result<(), Error> {
        let db = self.db();
        let never = &|| false;
        let reply = self.client.run(
            &format!(
                "SELECT count() FROM system.tables WHERE database = {} AND name = 'edges_1h_mv' \
                 FORMAT TabSeparated",
                sql_quote(&self.cfg.database)
            ),
            None,
            Mode::Read,
            64,
            never,
        )?;
        if String::from_utf8_lossy(&reply).trim() != "0" {
            return Ok(());
        }
        self.exec(&format!("DROP TABLE IF EXISTS {db}.edges_1h"), never)?;
        self.exec(&rollup_ddl(&db, HOUR), never)?;
        let reply = self.client.run(
            &format!(
                "SELECT DISTINCT partition_id FROM system.parts WHERE database = {} \
                 AND table = 'edges_1m' AND active ORDER BY partition_id LIMIT 1000000 \
                 FORMAT TabSeparated",
                sql_quote(&self.cfg.database)
            ),
            None,
            Mode::Read,
            64 << 20,
            never,
        )?;
        for id in String::from_utf8_lossy(&reply).lines() {
            let hour: u32 = id
                .parse()
                .map_err(|_| Error::BadReply(format!("partition id {id:?}")))?;
            self.exec(&backfill_sql(&db, hour), never)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_migration_per_version() {
        assert_eq!(migrations("`d`").len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn the_view_groups_by_every_key_column_of_the_rollups() {
        for g in [MINUTE, HOUR] {
            let view = view_ddl("`d`", g);
            let table = rollup_ddl("`d`", g);
            for c in rollup_key_columns() {
                assert!(view.contains(&format!("`{c}`")), "{c}");
                assert!(table.contains(&format!("`{c}` ")), "{c}");
            }
            for c in STATE_COLUMNS {
                assert!(view.contains(&format!("AS `{c}`")), "{c}");
                assert!(table.contains(&format!("`{c}` AggregateFunction")), "{c}");
            }
        }
        let fill = backfill_sql("`d`", 3600);
        for c in rollup_key_columns() {
            assert!(fill.contains(&format!("`{c}`")), "{c}");
        }
    }
}
