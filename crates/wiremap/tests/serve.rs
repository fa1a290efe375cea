//! `wiremap serve` from the command line: several captures per --pcap, a busy port.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// GET `path` from `addr`; the body.
fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("sends");
    let mut r = String::new();
    s.read_to_string(&mut r).expect("reads");
    r.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn one_pcap_flag_takes_several_captures() {
    let (a, b) = (
        pcap("dns_sanders_lab-cname.pcapng"),
        pcap("tls_beats_tls13.pcap"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wiremap"))
        .args(["serve", "--pcap", &a, &b, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("API on http://")
                .map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_string())
        })
        .expect("announces its address");
    // (/api/stats says `capturing: false` before the import has started, too.)
    assert!(
        lines
            .map_while(Result::ok)
            .any(|l| l.contains("import done")),
        "the import finishes"
    );
    let served: serde_json::Value =
        serde_json::from_str(&get(&addr, "/api/map?level=ip")).expect("map JSON");
    let _ = child.kill();
    let _ = child.wait();
    // The same two captures through `wiremap map`: the same edges.
    let both = map_json(&[&a, &b, "--level", "ip"]);
    let keys = |m: &serde_json::Value| {
        let mut k: Vec<String> = m["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["source"], e["target"], e["protocol"], e["requests"]
                )
            })
            .collect();
        k.sort();
        k
    };
    let one = map_json(&[&a, "--level", "ip"]);
    assert!(keys(&both).len() > keys(&one).len(), "both files count");
    assert_eq!(keys(&served), keys(&both));
}

#[test]
fn a_busy_port_is_reported_before_any_import() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = taken.local_addr().expect("addr").to_string();
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_wiremap"))
        .args([
            "serve",
            "--pcap",
            &pcap("mixed_suricata_browsing-tls-dns-http.pcap"),
            "--listen",
            &port,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {port}")), "{err}");
    assert!(!err.contains("import done"), "{err}");
    // Not after an import: at once (generous for a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(taken);
}

/// Imports `capture` into `dir` with `serve` and stops it once the import is done.
fn import(capture: &str, dir: &std::path::Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wiremap"))
        .args([
            "serve",
            "--pcap",
            capture,
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let done = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("import done"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "the import finishes");
}

#[test]
fn an_export_of_all_packets_is_the_whole_capture() {
    let capture = pcap("mixed_suricata_browsing-tls-dns-http.pcap");
    let dir = tmp("export-all-data");
    let _ = std::fs::remove_dir_all(&dir);
    import(&capture, &dir);
    let packets = |file: &std::path::Path| {
        map_json(&[&file.to_string_lossy(), "--level", "ip"])["stats"]["packets"]
            .as_u64()
            .expect("packets")
    };
    let original = packets(std::path::Path::new(&capture));
    let (all, behind) = (tmp("all.pcapng"), tmp("behind.pcapng"));
    let data = dir.to_str().expect("utf-8");
    let export = |extra: &[&str], out: &std::path::Path| {
        let mut args = vec!["export", "--data", data, "-o", out.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        wiremap(&args)
    };
    for (out, extra) in [(&all, &["--all-packets"][..]), (&behind, &[][..])] {
        let o = export(extra, out);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(packets(&all), original);
    // Without it, only the flows behind entries: this capture's TLS sessions and
    // unrecognised packets carry more than that.
    let b = packets(&behind);
    assert!(b > 0 && b < original, "{b} of {original}");
    // A window relative to the newest data, written as the README does (`--from -10m`).
    let o = export(&["--all-packets", "--from", "-10m"], &all);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        packets(&all),
        original,
        "the capture spans less than ten minutes"
    );
    // A filter and every packet contradict each other.
    let o = export(&["--all-packets", "-f", "dns"], &all);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
