//! Requests to ClickHouse's HTTP interface: one statement per request, settings as URL
//! parameters, bodies gzip-compressed, replies read up to a byte cap, and a caller's stop
//! flag honoured while the server works (the query is killed by its id).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Config, Error};

/// How long an error reply may be (its text goes into the error).
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// How often a waiting caller looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Whether a statement only reads (run with `readonly=2`: settings may change, data not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    url: String,
    user: Option<String>,
    password: Option<String>,
    max_execution_secs: u64,
    compress: bool,
}

fn next_query_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "wiremap-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `Code: 60, e.displayText() = DB::Exception: …` → 60.
fn error_code(text: &str) -> Option<i32> {
    let rest = text.trim_start().strip_prefix("Code: ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl Client {
    pub(crate) fn new(cfg: &Config) -> Result<Client, Error> {
        let url = cfg.url.trim_end_matches('/').to_string();
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(Error::Config(format!(
                "ClickHouse URL must be http://HOST:PORT, got {url:?}"
            )));
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(Error::Config(format!(
                "ClickHouse URL must be http://HOST:PORT (user and password are separate settings), got {url:?}"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The store talks to its server only; an HTTP proxy from the environment is not
            // for it.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(5)))
            // The server stops a query at max_execution_time; this only catches a dead peer.
            .timeout_global(Some(cfg.max_execution_time + Duration::from_secs(30)))
            .build()
            .into();
        Ok(Client {
            agent,
            url,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            max_execution_secs: cfg.max_execution_time.as_secs().max(1),
            compress: cfg.compress,
        })
    }

    /// Runs `sql` (with `body` appended as its data, for inserts) and returns the reply, at
    /// most `cap` bytes. While the server works, `stop` is asked every 50 ms; when it says
    /// yes the query is killed and [`Error::Stopped`] returned.
    pub(crate) fn run(
        &self,
        sql: &str,
        body: Option<Vec<u8>>,
        mode: Mode,
        cap: u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u8>, Error> {
        if stop() {
            return Err(Error::Stopped);
        }
        let id = next_query_id();
        let (tx, rx) = mpsc::sync_channel(1);
        let this = self.clone();
        let sql_owned = sql.to_string();
        let qid = id.clone();
        // The request runs on its own thread so this one can watch the stop flag.
        std::thread::Builder::new()
            .name("clickhouse-query".into())
            .spawn(move || {
                let _ = tx.send(this.request(&sql_owned, body, mode, cap, &qid));
            })
            .map_err(|e| Error::Io(format!("cannot start a query thread: {e}")))?;
        loop {
            match rx.recv_timeout(STOP_POLL) {
                Ok(r) => return r,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Io("query thread ended without a reply".into()))
                }
                Err(mpsc::RecvTimeoutError::Timeout) if stop() => {
                    self.kill(&id);
                    return Err(Error::Stopped);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Asks the server to stop query `id` (best effort: it may have ended already).
    fn kill(&self, id: &str) {
        let sql = format!(
            "KILL QUERY WHERE query_id = {} ASYNC",
            wiremap_kfl::sql_quote(id)
        );
        let _ = self.request(&sql, None, Mode::Write, MAX_ERROR_BYTES, &next_query_id());
    }

    fn request(
        &self,
        sql: &str,
        body: Option<Vec<u8>>,
        mode: Mode,
        cap: u64,
        id: &str,
    ) -> Result<Vec<u8>, Error> {
        let mut req = self
            .agent
            .post(&self.url)
            .query("query_id", id)
            .query("max_execution_time", self.max_execution_secs.to_string());
        if mode == Mode::Read {
            req = req.query("readonly", "2");
        }
        // 18.16 reads credentials from URL parameters (its X-ClickHouse-* headers came later).
        if let Some(u) = &self.user {
            req = req.query("user", u);
        }
        if let Some(p) = &self.password {
            req = req.query("password", p);
        }
        // With data, the statement goes in the URL and the data is the body.
        let payload = match body {
            Some(data) => {
                req = req.query("query", sql);
                data
            }
            None => sql.as_bytes().to_vec(),
        };
        let payload = if self.compress {
            req = req.header("Content-Encoding", "gzip");
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(payload.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&payload)
                .and_then(|_| gz.finish())
                .map_err(|e| Error::Io(format!("compressing: {e}")))?
        } else {
            payload
        };
        let mut resp = req
            .send(&payload[..])
            .map_err(|e| Error::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let limit = if status == 200 { cap } else { MAX_ERROR_BYTES };
        let mut out = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Error::Io(format!("reading the reply: {e}")))?;
        if status != 200 {
            out.truncate(MAX_ERROR_BYTES as usize);
            let text = String::from_utf8_lossy(&out).trim().to_string();
            return Err(Error::Server {
                status,
                code: error_code(&text),
                message: text,
            });
        }
        if out.len() as u64 > cap {
            return Err(Error::ReplyTooLarge(cap));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes() {
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(error_code("garbage"), None);
    }

    #[test]
    fn urls_are_plain_host_and_port() {
        let cfg = |u: &str| Config {
            url: u.into(),
            ..Config::default()
        };
        assert!(Client::new(&cfg("http://127.0.0.1:8123")).is_ok());
        assert!(Client::new(&cfg("http://127.0.0.1:8123/")).is_ok());
        for bad in [
            "https://h:1",
            "127.0.0.1:8123",
            "http://u:p@h:1",
            "http://h:1/x",
            "http://",
        ] {
            assert!(
                matches!(Client::new(&cfg(bad)), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }
}
