//! Every kind of bad input ends with exit code 2 and one line naming the file and where it
//! went wrong; nothing panics, and a truncated tail still yields the map of the good part.

mod common;

use common::*;

fn nflog() -> Vec<u8> {
    std::fs::read(pcap("http1_zeek_nflog.pcap")).expect("capture")
}

fn write(name: &str, bytes: &[u8]) -> String {
    let p = tmp(name);
    std::fs::write(&p, bytes).expect("write");
    p.to_string_lossy().into_owned()
}

fn assert_bad(path: &str, want: &[&str]) {
    let o = wiremap(&["map", path, "--level", "ip"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{path}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].contains(path), "names the file: {err}");
    for w in want {
        assert!(lines[0].contains(w), "mentions {w:?}: {err}");
    }
    assert!(o.stdout.is_empty(), "no map when nothing was read");
}

#[test]
fn zero_length_file() {
    assert_bad(&write("empty.pcap", b""), &["empty file"]);
}

#[test]
fn garbage() {
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hex: Vec<String> = junk[..4].iter().map(|b| format!("{b:02x}")).collect();
    assert_bad(
        &write("garbage.pcap", &junk),
        &[
            "not a pcap or pcapng",
            &format!("starts with {}", hex.join(" ")),
        ],
    );
}

#[test]
fn a_text_file_is_named_for_what_it_starts_with() {
    assert_bad(
        &write("notes.pcap", b"# wiremap notes\n"),
        &[
            "not a pcap or pcapng",
            "starts with 23 20 77 69 (\"# wi\")",
            "0a 0d 0d 0a",
        ],
    );
}

#[test]
fn truncated_header() {
    assert_bad(
        &write("trunc-hdr.pcap", &nflog()[..10]),
        &["truncated file header", "offset 0"],
    );
}

#[test]
fn unknown_link_type() {
    let mut d = nflog();
    d[20..24].copy_from_slice(&147u32.to_le_bytes());
    assert_bad(
        &write("link.pcap", &d),
        &["unsupported link type 147", "record 1", "offset 24"],
    );
}

#[test]
fn record_claiming_more_than_present() {
    let d = nflog();
    let mut bad = d[..32].to_vec();
    bad.extend_from_slice(&2000u32.to_le_bytes());
    bad.extend_from_slice(&2000u32.to_le_bytes());
    bad.extend_from_slice(&d[40..200]);
    assert_bad(
        &write("claims.pcap", &bad),
        &[
            "truncated record data",
            "record 1",
            "offset 24",
            "need 2016 bytes",
        ],
    );
}

#[test]
fn impossible_record_length() {
    let d = nflog();
    let mut bad = d[..32].to_vec();
    bad.extend_from_slice(&(64u32 << 20).to_le_bytes());
    bad.extend_from_slice(&(64u32 << 20).to_le_bytes());
    bad.extend_from_slice(&d[40..]);
    assert_bad(&write("huge.pcap", &bad), &["captured length", "record 1"]);
}

#[test]
fn missing_file() {
    let o = wiremap(&["map", "/nonexistent/x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/x.pcap"));
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["map", "--level", "galaxy", "x.pcap"][..],
        &["map", "--format", "png", "x.pcap"],
        &["map"],
        &["frobnicate"],
    ] {
        let o = wiremap(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn truncated_tail_keeps_the_good_part() {
    let d = nflog();
    let path = write("trunc-tail.pcap", &d[..d.len() - 100]);
    let o = wiremap(&["map", &path, "--level", "ip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains("truncated record data") && err.contains(&path),
        "{err}"
    );
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let edges = m["edges"].as_array().expect("edges");
    assert!(
        edges
            .iter()
            .any(|e| e["protocol"] == "http" && e["requests"] == 1),
        "{m}"
    );
}

#[test]
fn every_prefix_of_a_real_capture_is_handled() {
    // Cut a real pcapng at every 97th byte: no panic, and exit 0 or 2 only.
    let d = std::fs::read(pcap("dns_sanders_lab-cname.pcapng")).expect("capture");
    let path = tmp("prefix.pcapng");
    for n in (0..d.len()).step_by(97) {
        std::fs::write(&path, &d[..n]).expect("write");
        let o = wiremap(&["map", path.to_str().expect("utf8"), "--level", "ip"]);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0) | Some(2)),
            "prefix {n}: {code:?} {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"));
    }
}

/// Bad flags of the live commands: exit 2 and a message that says what is wrong.
#[test]
fn live_commands_refuse_bad_flags() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["capture", "-i", "nope0wm", "--data", "/tmp/x-wm"],
            "no network interface named `nope0wm`",
        ),
        (
            &["serve", "--data", "/tmp/x-wm", "--listen", "0.0.0.0:18999"],
            "without --token",
        ),
        (&["serve"], "needs --data DIR, --pcap FILE"),
        (
            &["serve", "--pcap", "/nonexistent/x.pcap"],
            "/nonexistent/x.pcap",
        ),
        (
            &["serve", "--data", "/tmp/x-wm", "--max-size", "lots"],
            "expected a size",
        ),
        (
            &["serve", "--data", "/tmp/x-wm", "--retention", "5y"],
            "expected a number with s, m, h or d",
        ),
        (
            &[
                "export",
                "--data",
                "/nonexistent-wm",
                "-o",
                "/tmp/x-wm.pcapng",
            ],
            "/nonexistent-wm",
        ),
        (
            &[
                "export",
                "--data",
                "/tmp",
                "-o",
                "/tmp/x-wm.pcapng",
                "--from",
                "soon",
            ],
            "--from `soon`",
        ),
        (&["hub", "--data", "/tmp/x-wm-hub"], "the hub needs --token"),
        (
            &[
                "hub",
                "--insecure",
                "--data",
                "/tmp/x-wm-hub",
                "--merge-window",
                "5",
            ],
            "--merge-window",
        ),
        (
            &[
                "hub",
                "--insecure",
                "--data",
                "/tmp/x-wm-hub",
                "--clickhouse",
                "http://127.0.0.1:1",
                "--clickhouse-auth",
                "nocolon",
            ],
            "expected USER:PASSWORD",
        ),
        (
            &[
                "hub",
                "--insecure",
                "--data",
                "/tmp/x-wm-hub",
                "--clickhouse",
                "http://127.0.0.1:1",
                "--clickhouse-database",
                "a-b",
            ],
            "letters, digits and _ only",
        ),
        (
            &["agent", "--hub", "https://hub:8899", "-i", "lo"],
            "expected http://HOST:PORT",
        ),
        (&["agent", "-i", "lo"], "--hub"),
        (&["agent", "--hub", "http://127.0.0.1:9"], "--interface"),
        (
            &["agent", "--hub", "http://127.0.0.1:9", "-i", "nope0wm"],
            "no network interface named `nope0wm`",
        ),
        (
            &[
                "agent",
                "--hub",
                "http://127.0.0.1:9",
                "--pcap",
                "/nonexistent/x.pcap",
            ],
            "/nonexistent/x.pcap",
        ),
        (
            &[
                "agent",
                "--hub",
                "http://127.0.0.1:9",
                "-i",
                "lo",
                "--buffer",
                "lots",
            ],
            "expected a size",
        ),
    ];
    for (args, want) in cases {
        let o = wiremap(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A data directory written by an earlier wiremap is refused, says its format, says how to
/// import again, and is left as it was.
#[test]
fn an_earlier_store_format_is_refused_with_how_to_import_again() {
    let dir = tmp("old-store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let seg = dir.join("seg-0000000001.entries");
    // The first format's magic, then a framed record.
    let old = [b"WMSEG001".as_slice(), &[3, 0, 0, 0, 1, 2, 3, 4, 2, 0, 0]].concat();
    std::fs::write(&seg, &old).expect("segment");
    let d = dir.to_str().expect("path");
    let o = wiremap(&["serve", "--data", d, "--listen", "127.0.0.1:0"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("segment format 1") && err.contains("--pcap"),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).expect("segment"), old);
    let _ = std::fs::remove_dir_all(&dir);
}
