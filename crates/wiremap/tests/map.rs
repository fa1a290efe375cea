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

/// The summary's rows: (client, server, protocol, requests) of each edge line.
fn summary_rows(text: &str) -> Vec<(String, String, String, u64)> {
    text.lines()
        .skip_while(|l| !l.starts_with("CLIENT"))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('…'))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
                cols[3].replace(',', "").parse().expect("requests"),
            )
        })
        .collect()
}

#[test]
fn the_summary_tells_the_map_to_a_person() {
    let capture = pcap("mixed_suricata_browsing-tls-dns-http.pcap");
    let m = map_json(&[&capture]);
    let o = wiremap(&["map", &capture, "--format", "summary"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let nodes = m["nodes"].as_array().expect("nodes");
    let edges = m["edges"].as_array().expect("edges");
    assert!(
        text.starts_with(&format!("{} nodes, {} edges", nodes.len(), edges.len())),
        "{text}"
    );
    // The busiest edges, by name, as the JSON has them (names are short in this capture).
    let name = |id: &serde_json::Value| {
        nodes
            .iter()
            .find(|n| n["id"] == *id)
            .and_then(|n| n["name"].as_str())
            .expect("node")
            .to_string()
    };
    let mut want: Vec<(String, String, String, u64)> = edges
        .iter()
        .map(|e| {
            (
                name(&e["source"]),
                name(&e["target"]),
                e["protocol"].as_str().expect("protocol").to_string(),
                e["requests"].as_u64().expect("requests"),
            )
        })
        .collect();
    want.sort_by_key(|w| std::cmp::Reverse(w.3));
    let rows = summary_rows(&text);
    assert_eq!(rows.len(), 20.min(want.len()));
    for (r, w) in rows.iter().zip(&want) {
        assert_eq!(r.3, w.3, "{r:?} vs {w:?}");
    }
    assert!(rows.iter().all(|r| want.contains(r)), "{rows:?}");
    assert!(text.contains(&format!("and {} more edges", want.len() - 20)));
    // Every non-zero drop counter, and nothing else.
    for (k, v) in m["stats"]["dropped"].as_object().expect("dropped") {
        let listed = text
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{k} ")));
        assert_eq!(listed, v.as_u64() != Some(0), "{k}");
    }
}

#[test]
fn a_terminal_gets_the_summary_and_a_pipe_gets_json() {
    let capture = pcap("dns_sanders_lab-cname.pcapng");
    // `script` gives the command a terminal; without it this half cannot run here.
    let Ok(o) = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!("{} map {capture}", env!("CARGO_BIN_EXE_wiremap")))
        .arg("/dev/null")
        .output()
    else {
        eprintln!("skipped: no `script` to give wiremap a terminal");
        return;
    };
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains(" nodes, ") && text.contains("CLIENT"),
        "{text}"
    );
    // Piped (as every other test runs it): JSON.
    let m = map_json(&[&capture]);
    assert!(m["edges"].as_array().is_some_and(|e| !e.is_empty()));
    // -o on a terminal still writes the JSON file.
    let out = tmp("terminal-map.json");
    let o = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} map {capture} -o {}",
            env!("CARGO_BIN_EXE_wiremap"),
            out.display()
        ))
        .arg("/dev/null")
        .output()
        .expect("script runs");
    assert!(o.status.success());
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("written")).expect("JSON");
    assert_eq!(written, m);
}

#[test]
fn help_explains_every_format_and_level() {
    let o = wiremap(&["map", "--help"]);
    let help = stdout(&o);
    for word in [
        "summary",
        "json",
        "dot",
        "mermaid",
        "graphml",
        "svg",
        "html",
        "pod",
        "workload",
        "service",
        "namespace",
        "ip",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("- {word}:")))
            .unwrap_or_else(|| panic!("`{word}` is not explained:\n{help}"));
        assert!(line.len() > word.len() + 12, "{line}");
    }
}
