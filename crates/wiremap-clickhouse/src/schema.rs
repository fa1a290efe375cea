//! The schema and its migrations.
//!
//! Each migration is a numbered list of statements; `schema_version` records what was
//! applied. Statements are idempotent (`IF NOT EXISTS`), so a start that died half-way
//! through a migration simply runs it again. A database whose version is newer than this
//! binary knows is refused: an older binary must not write into a layout it does not know.

use crate::columns::{entry_columns, SIDE_KEY};
use crate::http::Mode;
use crate::{ClickHouse, Error};

/// The version this binary writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Columns that name the two endpoints of an edge, protocol and node: the rollups' key, and
/// what a filter may read for a map to be answered from the rollups.
pub(crate) fn rollup_key_columns() -> Vec<String> {
    let mut v = vec!["protocol".to_string(), "node_name".to_string()];
    for p in ["src", "dst"] {
        v.extend(SIDE_KEY.iter().map(|c| format!("{p}_{c}")));
    }
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

fn rollup_ddl(db: &str) -> String {
    let mut cols = vec!["`minute` DateTime".to_string()];
    let mut order = vec!["minute".to_string()];
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
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.edges_1m ({}) ENGINE = AggregatingMergeTree \
         PARTITION BY toStartOfHour(minute) PRIMARY KEY (`minute`, `protocol`) ORDER BY ({})",
        cols.join(", "),
        order.join(", ")
    )
}

/// What one entry adds to its edge's rollup (also used to aggregate entries directly).
pub(crate) const SAMPLE: &str = "`has_response` != 0 AND `elapsed_time` > 0";

fn view_ddl(db: &str) -> String {
    let keys: Vec<String> = rollup_key_columns()
        .iter()
        .map(|c| format!("`{c}`"))
        .collect();
    let mut select = vec!["toStartOfMinute(`ts`) AS `minute`".to_string()];
    select.extend(keys.iter().cloned());
    let mut group = vec!["`minute`".to_string()];
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
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.edges_1m_mv TO {db}.edges_1m AS \
         SELECT {} FROM {db}.entries GROUP BY {}",
        select.join(", "),
        group.join(", ")
    )
}

/// Statements of each migration, oldest first; migration `i` brings the schema to `i + 1`.
fn migrations(db: &str) -> Vec<Vec<String>> {
    vec![vec![entries_ddl(db), rollup_ddl(db), view_ddl(db)]]
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
                self.exec(&s, never)?;
            }
            self.exec(
                &format!("INSERT INTO {db}.schema_version VALUES ({version}, now())"),
                never,
            )?;
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
        let view = view_ddl("`d`");
        let table = rollup_ddl("`d`");
        for c in rollup_key_columns() {
            assert!(view.contains(&format!("`{c}`")), "{c}");
            assert!(table.contains(&format!("`{c}` ")), "{c}");
        }
    }
}
