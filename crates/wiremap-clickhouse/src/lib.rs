//! wiremap's store at cluster scale: entries in ClickHouse, spoken to over its HTTP
//! interface, and the queries the API needs answered inside the server.
//!
//! - `entries`: one row per entry, a column per stored fact (the columns KFL's SQL reads),
//!   partitioned by hour, sorted by time.
//! - `edges_1m`: per minute, per endpoint pair (both sides' address and identity), protocol
//!   and capture node: counts, errors, bytes, first/last time and a latency sketch whose
//!   buckets are [`wiremap_map::Sketch`]'s, kept by a materialised view as entries arrive.
//! - `edges_1h`: the same per hour, kept by a second view (so a day is 24 rows per pair).
//! - [`ClickHouse::map`] answers from the rollups when the filter reads only what they keep
//!   and the window is whole minutes (its whole hours from `edges_1h`, the minutes at its
//!   ends from `edges_1m`), else aggregates the entries inside ClickHouse; either way only
//!   one row per endpoint pair comes back, folded by [`wiremap_map::MapBuilder`].
//! - Retention drops whole hourly partitions of all three ([`ClickHouse::drop_before`]).
//!
//! It runs against ClickHouse 18.16 (Debian 12's server) and uses nothing current releases
//! dropped. The API is synchronous: callers run it on blocking threads. Every query has a
//! `LIMIT`, replies are read up to a byte cap, and long queries stop when the caller's stop
//! flag says so (and at `max_execution_time` on the server).
#![deny(clippy::unwrap_used)]

mod backend;
mod columns;
mod http;
mod query;
mod rowbinary;
mod schema;

use std::time::Duration;

use wiremap_model::Entry;

pub use backend::Writer;
pub use query::{DroppedPartition, MapSource, StoreStats, MAX_PAGE};
pub use schema::SCHEMA_VERSION;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `http://HOST:PORT` of the HTTP interface.
    pub url: String,
    /// Database of the tables (created when missing).
    pub database: String,
    /// User (the server's default user when `None`).
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// The server stops a query after this long (`max_execution_time`).
    pub max_execution_time: Duration,
    /// Largest reply read; a longer one is an error.
    pub max_reply_bytes: u64,
    /// Entries per insert request.
    pub batch_rows: usize,
    /// Endpoint pairs a map may aggregate; more is an error (narrow the filter or window).
    pub max_map_rows: usize,
    /// Whether request bodies are gzip-compressed.
    pub compress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "http://127.0.0.1:8123".into(),
            database: "wiremap".into(),
            user: None,
            password: None,
            max_execution_time: Duration::from_secs(60),
            max_reply_bytes: 256 << 20,
            batch_rows: 20_000,
            max_map_rows: 1_000_000,
            compress: true,
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("ClickHouse configuration: {0}")]
    Config(String),
    /// The server could not be reached or the connection broke.
    #[error("ClickHouse connection: {0}")]
    Io(String),
    /// The server refused the statement.
    #[error("ClickHouse answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// ClickHouse's error code, when the reply names one.
        code: Option<i32>,
        /// The reply's text (at most 64 KiB).
        message: String,
    },
    /// A reply that does not decode.
    #[error("ClickHouse reply: {0}")]
    BadReply(String),
    /// A reply longer than the cap.
    #[error("ClickHouse reply longer than {0} bytes")]
    ReplyTooLarge(u64),
    /// A map over more endpoint pairs than allowed.
    #[error("the map has more than {0} endpoint pairs: narrow the filter or the window")]
    TooManyRows(usize),
    /// The caller's stop flag ended the query.
    #[error("query stopped")]
    Stopped,
    /// The database was written by a newer wiremap.
    #[error(
        "the ClickHouse schema is version {found}, newer than this wiremap knows ({known}): \
         upgrade wiremap or use another database"
    )]
    SchemaTooNew {
        /// Version in the database.
        found: u32,
        /// Version this binary writes.
        known: u32,
    },
    /// The filter has no SQL form; filter in Rust instead (see `wiremap_kfl::SqlError`).
    #[error(transparent)]
    Filter(#[from] wiremap_kfl::SqlError),
}

/// A ClickHouse store.
#[derive(Debug, Clone)]
pub struct ClickHouse {
    client: http::Client,
    cfg: Config,
}

fn valid_database(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && name.len() <= 64
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl ClickHouse {
    /// Connects, creates the database and tables when missing and migrates them; refuses a
    /// schema newer than this binary knows.
    pub fn open(cfg: Config) -> Result<ClickHouse, Error> {
        if !valid_database(&cfg.database) {
            return Err(Error::Config(format!(
                "database name {:?}: letters, digits and _ only",
                cfg.database
            )));
        }
        if cfg.batch_rows == 0 || cfg.max_map_rows == 0 {
            return Err(Error::Config("batch and map sizes must be positive".into()));
        }
        let ch = ClickHouse {
            client: http::Client::new(&cfg)?,
            cfg,
        };
        ch.migrate()?;
        Ok(ch)
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn db(&self) -> String {
        format!("`{}`", self.cfg.database)
    }

    /// Runs a statement that changes something (DDL, `ALTER`, small inserts).
    fn exec(&self, sql: &str, stop: &dyn Fn() -> bool) -> Result<(), Error> {
        self.client
            .run(sql, None, http::Mode::Write, 1 << 20, stop)
            .map(drop)
    }

    /// Stores entries (named, with ids), in batches of [`Config::batch_rows`] RowBinary
    /// rows. A batch is one request: it is stored whole or, on error, not at all.
    pub fn insert<E: std::borrow::Borrow<Entry>>(&self, entries: &[E]) -> Result<(), Error> {
        let sql = format!(
            "INSERT INTO {}.entries ({}) FORMAT RowBinary",
            self.db(),
            columns::column_list()
        );
        for chunk in entries.chunks(self.cfg.batch_rows) {
            let mut w = rowbinary::Writer::default();
            for e in chunk {
                columns::write_entry(&mut w, e.borrow());
            }
            self.client
                .run(&sql, Some(w.buf), http::Mode::Write, 1 << 20, &|| false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_identifiers() {
        for ok in ["wiremap", "_x", "w1_2"] {
            assert!(valid_database(ok), "{ok}");
        }
        for bad in ["", "1x", "a-b", "a`b", "a b", "a.b", &"x".repeat(65)] {
            assert!(!valid_database(bad), "{bad}");
        }
    }
}
