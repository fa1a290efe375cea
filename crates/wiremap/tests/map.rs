//! The service map of real captures: identity naming, levels, formats, inputs.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

/// `address -> names it was given` from the truth file's DNS answers table.
fn truth_answers(capture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text =
        std::fs::read_to_string(pcaps().join(format!("{capture}.truth.txt"))).expect("truth");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## DNS answers") {
            inside = true;
            continue;
        }
        if inside && line.starts_with("## ") {
            break;
        }
        let cols: Vec<&str> = line.split('|').collect();
        if !inside || cols.len() < 3 {
            continue;
        }
        for addr in cols[1]
            .split(',')
            .chain(cols[2].split(','))
            .filter(|a| !a.is_empty())
        {
            out.entry(addr.to_string())
                .or_default()
                .insert(cols[0].to_lowercase());
        }
    }
    out
}

fn check_dns_names(capture: &str) {
    let answers = truth_answers(capture);
    assert!(!answers.is_empty(), "truth has DNS answers");
    let m = map_json(&[&pcap(capture)]);
    let mut checked = 0;
    for n in m["nodes"].as_array().expect("nodes") {
        for a in n["addresses"].as_array().expect("addresses") {
            let a = a.as_str().expect("str");
            if let Some(names) = answers.get(a) {
                let name = n["name"].as_str().expect("name");
                assert_eq!(n["kind"], "dns", "{a} should be a DNS node, got {n}");
                assert!(
                    names.contains(name),
                    "{a} named {name}, truth says {names:?}"
                );
                assert_eq!(n["id"].as_str(), Some(format!("dns:{name}").as_str()));
                assert_eq!(n["external"], true);
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} answered addresses carried traffic"
    );
    // No server with an answer is left as a bare address.
    for n in m["nodes"].as_array().expect("nodes") {
        if n["kind"] == "ip" {
            let a = n["name"].as_str().expect("name");
            assert!(
                !answers.contains_key(a),
                "{a} has a DNS answer but is unnamed"
            );
        }
    }
}

#[test]
fn external_servers_are_named_by_the_queried_name_browsing_tls() {
    check_dns_names("mixed_suricata_browsing-tls-dns-http.pcap");
}

#[test]
fn external_servers_are_named_by_the_queried_name_espn() {
    check_dns_names("http1_sanders_espn-browsing.pcapng");
}

#[test]
fn ip_level_keeps_addresses_and_counts_requests() {
    let m = map_json(&[&pcap("http1_zeek_pipelined-requests.pcap"), "--level", "ip"]);
    assert_eq!(m["version"], 1);
    assert_eq!(m["level"], "ip");
    let edges = m["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 1, "{m}");
    let e = &edges[0];
    assert_eq!(e["source"], "ip:192.168.1.104");
    assert_eq!(e["target"], "ip:63.245.209.11");
    assert_eq!(e["protocol"], "http");
    assert_eq!(
        (
            e["requests"].as_u64(),
            e["responses"].as_u64(),
            e["errors"].as_u64()
        ),
        (Some(5), Some(5), Some(0))
    );
    assert!(e["bytes"]["response"].as_u64().expect("bytes") > 30_000);
    let lat = &e["latency_us"];
    assert!(lat["p50"].as_u64().expect("p50") > 0 && lat["p50"].as_u64() <= lat["p99"].as_u64());
    assert!(e["first_seen"]
        .as_str()
        .expect("ts")
        .starts_with("2009-11-18T20:58:"));
    assert_eq!(m["stats"]["packets"], 49);
}

#[test]
fn dot_renders_with_graphviz() {
    let o = wiremap(&[
        "map",
        &pcap("mixed_suricata_browsing-tls-dns-http.pcap"),
        "--format",
        "dot",
    ]);
    assert!(o.status.success());
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph wiremap {"));
    assert!(dot.contains("\"dns:www.bing.com\""), "{dot}");
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz `dot` is installed (scripts/setup)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dot.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("dot runs");
    assert!(out.status.success());
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("<svg") && svg.contains("www.bing.com"));
}

#[test]
fn mermaid_lists_every_edge() {
    let o = wiremap(&[
        "map",
        &pcap("http1_sanders_espn-browsing.pcapng"),
        "--format",
        "mermaid",
    ]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.starts_with("flowchart LR\n"));
    let m = map_json(&[&pcap("http1_sanders_espn-browsing.pcapng")]);
    let edges = m["edges"].as_array().expect("edges").len();
    assert_eq!(text.matches("-->|").count(), edges);
    assert_eq!(text.matches("linkStyle").count(), edges);
}

#[test]
fn graphml_svg_and_html_carry_every_node_and_edge() {
    let file = pcap("http1_sanders_espn-browsing.pcapng");
    let m = map_json(&[&file]);
    let nodes = m["nodes"].as_array().expect("nodes").len();
    let edges = m["edges"].as_array().expect("edges").len();
    let out = |f: &str| {
        let o = wiremap(&["map", &file, "--format", f]);
        assert!(o.status.success(), "{f}");
        stdout(&o)
    };
    let g = out("graphml");
    assert!(g.starts_with("<?xml") && g.trim_end().ends_with("</graphml>"));
    assert_eq!(
        (g.matches("<node ").count(), g.matches("<edge ").count()),
        (nodes, edges)
    );
    let svg = out("svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        (svg.matches("<circle").count(), svg.matches("<line").count()),
        (nodes, edges)
    );
    let html = out("html");
    assert!(html.contains("window.WIREMAP_OFFLINE = {") && !html.contains("src=\"main.js\""));
    let start =
        html.find("window.WIREMAP_OFFLINE = ").expect("data") + "window.WIREMAP_OFFLINE = ".len();
    let end = html[start..].find(";</script>").expect("end") + start;
    let embedded: serde_json::Value =
        serde_json::from_str(&html[start..end]).expect("embedded map");
    assert_eq!(embedded["edges"].as_array().map(Vec::len), Some(edges));
}

#[test]
fn stdin_and_output_file() {
    let file = std::fs::File::open(pcaps().join("dns_zeek_docker-container.pcap")).expect("open");
    let out = tmp("stdin-map.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wiremap"))
        .args([
            "map",
            "-",
            "--level",
            "ip",
            "-o",
            out.to_str().expect("utf8"),
        ])
        .stdin(file)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("written")).expect("json");
    let e = &m["edges"][0];
    assert_eq!(
        (
            e["source"].as_str(),
            e["target"].as_str(),
            e["protocol"].as_str()
        ),
        (Some("ip:172.17.0.2"), Some("ip:1.1.1.1"), Some("dns"))
    );
}

#[test]
fn several_files_merge_in_time_order() {
    let a = pcap("dns_zeek_docker-container.pcap");
    let b = pcap("http1_zeek_nflog.pcap");
    let both = map_json(&[&a, &b, "--level", "ip"]);
    let one = map_json(&[&a, "--level", "ip"]);
    let two = map_json(&[&b, "--level", "ip"]);
    let n = |m: &serde_json::Value| m["edges"].as_array().expect("edges").len();
    assert_eq!(n(&both), n(&one) + n(&two));
    let p = |m: &serde_json::Value| m["stats"]["packets"].as_u64().expect("packets");
    assert_eq!(p(&both), p(&one) + p(&two));
    assert_eq!(
        both["window"]["from"],
        one["window"]["from"].clone().min_ts(&two["window"]["from"])
    );
}

trait MinTs {
    fn min_ts(self, other: &serde_json::Value) -> serde_json::Value;
}

impl MinTs for serde_json::Value {
    fn min_ts(self, other: &serde_json::Value) -> serde_json::Value {
        if self.as_str() <= other.as_str() {
            self
        } else {
            other.clone()
        }
    }
}

#[test]
fn zones_name_address_ranges() {
    let zones = tmp("zones.txt");
    std::fs::write(&zones, "# lab\n192.168.1.0/24 = office\n").expect("write");
    let m = map_json(&[
        &pcap("http1_zeek_pipelined-requests.pcap"),
        "--zones",
        zones.to_str().expect("utf8"),
    ]);
    assert_eq!(m["edges"][0]["source"], "zone:office");
    std::fs::write(&zones, "192.168.1.0/33 = office\n").expect("write");
    let o = wiremap(&[
        "map",
        &pcap("http1_zeek_pipelined-requests.pcap"),
        "--zones",
        zones.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("zones.txt:1:"), "{}", stderr(&o));
}

#[test]
fn overlay_tunnels_show_the_inner_conversation() {
    // ERSPAN over GRE carrying IPv6: the edge is between the inner addresses, never the
    // mirror's tunnel endpoints (see tests/truth-defects.txt).
    let m = map_json(&[
        &pcap("overlay_deepflow_erspan-dc-mirror.pcap"),
        "--level",
        "ip",
    ]);
    let edges = m["edges"].as_array().expect("edges");
    let has = |s: &str, t: &str, p: &str| {
        edges
            .iter()
            .any(|e| e["source"] == s && e["target"] == t && e["protocol"] == p)
    };
    assert!(has(
        "ip:240e:404:9711:a505:7489:cbac:5cd4:a5d4",
        "ip:fd00:172:28:50::117",
        "tls"
    ));
    assert!(!edges
        .iter()
        .any(|e| e["source"] == "ip:172.28.25.108" && e["target"] == "ip:172.28.28.70"));
    // VXLAN and Geneve too.
    let v = map_json(&[&pcap("overlay_zeek_vxlan-http.pcap"), "--level", "ip"]);
    assert!(v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .any(|e| e["protocol"] == "http"));
    let g = map_json(&[&pcap("overlay_zeek_geneve-tls.pcap"), "--level", "ip"]);
    assert!(g["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .any(|e| e["protocol"] == "tls"));
}

#[test]
fn host_header_names_a_server_without_a_dns_answer() {
    let o = wiremap(&["entries", &pcap("overlay_deepflow_erspan-dc-mirror.pcap")]);
    let hinted = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|e| e["host"] == "mapi.bestpay.com.cn")
        .expect("an entry with that Host");
    assert_eq!(hinted["dst"]["name"], "mapi.bestpay.com.cn");
    assert_eq!(hinted["dst"]["dns"], "", "a hint is not a DNS resolution");
}
