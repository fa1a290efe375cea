//! Every reason a map reports in `stats.dropped` is one `wiremap drops` documents.

mod common;

use common::*;

#[test]
fn every_reported_drop_is_documented() {
    let listed = stdout(&wiremap(&["drops"]));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() > 60, "{listed}");
    let documented = |k: &str| {
        names.contains(&k)
            || ["truncated_", "malformed_"]
                .iter()
                .any(|p| k.starts_with(p) && names.contains(&&*format!("{p}<header>")))
    };
    let dir = pcaps();
    let Ok(files) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no shared captures in {}", dir.display());
        return;
    };
    let mut seen = 0;
    for f in files.flatten() {
        let p = f.path();
        let name = p.display().to_string();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng") || name.ends_with(".cap")) {
            continue;
        }
        let m = map_json(&[&name, "--level", "ip"]);
        if let Some(d) = m["stats"]["dropped"].as_object() {
            for k in d.keys() {
                assert!(
                    documented(k),
                    "{name}: `{k}` is not listed by `wiremap drops`"
                );
                seen += 1;
            }
        }
    }
    eprintln!("{seen} reported drop counters, all documented");
}
