//! Helpers shared by the CLI tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The shared captures: `$WIREMAP_PCAPS`, else `shared/pcaps` beside the repository.
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

pub fn pcap(name: &str) -> String {
    pcaps().join(name).to_string_lossy().into_owned()
}

pub fn wiremap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wiremap"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("wiremap runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn map_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["map"];
    all.extend_from_slice(args);
    let o = wiremap(&all);
    assert!(o.status.success(), "wiremap {all:?} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("map is JSON")
}

pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wiremap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}
