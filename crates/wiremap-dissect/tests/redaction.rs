//! Secrets never leave the dissectors: conversations built from wire bytes, and the whole
//! serialised entry searched for the secret, while the fields around it stay.

mod common;

use common::{converse, h2_frame, hpack_literals};
use wiremap_dissect::DissectConfig;
use wiremap_model::{Direction, Entry};

use Direction::{AtoB as C, BtoA as S};

fn run(cfg: DissectConfig, server_port: u16, conv: &[(Direction, Vec<u8>)]) -> Vec<Entry> {
    converse(cfg, server_port, conv).0
}

/// The entries as the store and the API would see them.
fn text(entries: &[Entry]) -> String {
    let json: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).expect("serialises"))
        .collect();
    format!("{}\n{entries:?}", json.join("\n"))
}

fn assert_hidden(entries: &[Entry], secrets: &[&str]) -> String {
    let t = text(entries);
    for s in secrets {
        assert!(!t.contains(s), "{s} leaked:\n{t}");
    }
    assert!(t.contains("[REDACTED]"), "nothing redacted:\n{t}");
    t
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

#[test]
fn redis_credentials() {
    let commands: Vec<Vec<u8>> = vec![
        resp(&["AUTH", "pw-one"]),
        resp(&["auth", "alice", "pw-two"]),
        resp(&["HELLO", "3", "AUTH", "alice", "pw-three", "SETNAME", "app"]),
        b"AUTH \"pw four\"\r\n".to_vec(),
        resp(&[
            "CONFIG",
            "SET",
            "requirepass",
            "pw-five",
            "masterauth",
            "pw-six",
        ]),
        resp(&[
            "MIGRATE", "h", "6379", "", "0", "5000", "AUTH", "pw-seven", "KEYS", "k1",
        ]),
        resp(&[
            "MIGRATE", "h", "6379", "", "0", "5000", "AUTH2", "bob", "pw-eight", "KEYS", "k2",
        ]),
        resp(&["ACL", "SETUSER", "carol", "on", ">pw-nine", "~*", "+@all"]),
        resp(&["GET", "user:1"]),
    ];
    let mut conv = Vec::new();
    for c in &commands {
        conv.push((C, c.clone()));
        conv.push((S, b"+OK\r\n".to_vec()));
    }
    let es = run(DissectConfig::default(), 6379, &conv);
    assert_eq!(es.len(), commands.len());
    let t = assert_hidden(
        &es,
        &[
            "pw-one", "pw-two", "pw-three", "pw four", "pw-five", "pw-six", "pw-seven", "pw-eight",
            "pw-nine",
        ],
    );
    // What is not secret stays: verbs, users, keys, parameter names.
    for keep in [
        "\"AUTH\"",
        "alice",
        "SETNAME",
        "requirepass",
        "masterauth",
        "AUTH2 bob",
        "carol",
        "user:1",
        "~*",
    ] {
        assert!(t.contains(keep), "{keep} lost:\n{t}");
    }
}

fn http1_request(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {target} HTTP/1.1\r\nHost: api.example\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[test]
fn http1_targets_and_headers() {
    let cfg = DissectConfig {
        redact_headers: vec!["x-tenant".into()],
        ..DissectConfig::default()
    };
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nLocation: /next?session=sek-9\r\n\r\n";
    let conv = vec![
        (
            C,
            http1_request(
                "/login?user=bob&password=sek-1&X-Amz-Signature=sek-2&client_secret=sek-3",
                &[
                    ("X-Api-Key", "sek-4"),
                    ("Api-Key", "sek-5"),
                    ("X-Auth-Token", "sek-6"),
                    ("Proxy-Authorization", "Basic sek-7"),
                    ("X-Tenant", "sek-8"),
                    ("Accept", "text/plain"),
                ],
            ),
        ),
        (S, ok.to_vec()),
        (
            C,
            http1_request(
                "http://alice:sek-10@proxy.example/p?q=1",
                &[(
                    "Sec-WebSocket-Protocol",
                    "base64url.bearer.authorization.k8s.io.c2VrLTExLWxvbmctdG9rZW4tdmFsdWU, v4.channel.k8s.io",
                )],
            ),
        ),
        (S, ok.to_vec()),
    ];
    let es = run(cfg, 80, &conv);
    assert_eq!(es.len(), 2);
    let t = assert_hidden(
        &es,
        &[
            "sek-1", "sek-2", "sek-3", "sek-4", "sek-5", "sek-6", "sek-7", "sek-8", "sek-9",
            "sek-10", "c2VrLTEx",
        ],
    );
    for keep in [
        "user=bob",
        "/login",
        "text/plain",
        "alice",
        "q=1",
        "v4.channel.k8s.io",
    ] {
        assert!(t.contains(keep), "{keep} lost:\n{t}");
    }
}

#[test]
fn http2_and_grpc_honour_the_same_rules() {
    let cfg = DissectConfig {
        redact_headers: vec!["x-tenant".into()],
        ..DissectConfig::default()
    };
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    client.extend(h2_frame(4, 0, 0, &[]));
    let req = hpack_literals(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/pkg.Svc/Call?api_key=h2-1&x=2"),
        (":authority", "u:h2-2@svc"),
        ("content-type", "application/grpc"),
        ("x-api-key", "h2-3"),
        ("x-tenant", "h2-4"),
        ("authorization", "Bearer h2-5"),
        ("x-request-id", "rid-1"),
    ]);
    client.extend(h2_frame(1, 0x04, 1, &req));
    client.extend(h2_frame(0, 0x01, 1, &[0, 0, 0, 0, 0]));
    let mut server = h2_frame(4, 0, 0, &[]);
    server.extend(h2_frame(
        1,
        0x04,
        1,
        &hpack_literals(&[(":status", "200"), ("content-type", "application/grpc")]),
    ));
    server.extend(h2_frame(
        1,
        0x05,
        1,
        &hpack_literals(&[("grpc-status", "0"), ("set-cookie", "h2-6")]),
    ));
    let es = run(cfg, 50051, &[(C, client), (S, server)]);
    assert_eq!(es.len(), 1, "{es:?}");
    let t = assert_hidden(&es, &["h2-1", "h2-2", "h2-3", "h2-4", "h2-5", "h2-6"]);
    for keep in ["/pkg.Svc/Call", "x=2", "rid-1", "svc"] {
        assert!(t.contains(keep), "{keep} lost:\n{t}");
    }
}

fn pg_msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn postgres_simple_and_extended_queries() {
    let mut startup = Vec::new();
    let params = b"user\0app\0database\0shop\0\0";
    startup.extend_from_slice(&(8 + params.len() as i32).to_be_bytes());
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(params);
    let ready = pg_msg(b'Z', b"I");
    let mut auth = pg_msg(b'R', &3i32.to_be_bytes());
    let mut ok = pg_msg(b'R', &0i32.to_be_bytes());
    ok.extend(ready.clone());
    auth.truncate(auth.len());
    let q1 = pg_msg(b'Q', b"ALTER ROLE app PASSWORD 'pg-1'\0");
    let mut done1 = pg_msg(b'C', b"ALTER ROLE\0");
    done1.extend(ready.clone());
    let mut ext = pg_msg(
        b'P',
        b"s1\0CREATE ROLE r ENCRYPTED PASSWORD $$pg-2$$ LOGIN\0\0\0",
    );
    ext.extend(pg_msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
    ext.extend(pg_msg(b'E', b"\0\0\0\0\0"));
    ext.extend(pg_msg(b'S', b""));
    let mut done2 = pg_msg(b'1', b"");
    done2.extend(pg_msg(b'2', b""));
    done2.extend(pg_msg(b'C', b"CREATE ROLE\0"));
    done2.extend(ready.clone());
    let conv = vec![
        (C, startup),
        (S, auth),
        (C, pg_msg(b'p', b"pg-3\0")),
        (S, ok),
        (C, q1),
        (S, done1),
        (C, ext),
        (S, done2),
    ];
    let es = run(DissectConfig::default(), 5432, &conv);
    assert_eq!(es.len(), 2, "{es:?}");
    let t = assert_hidden(&es, &["pg-1", "pg-2", "pg-3"]);
    for keep in [
        "ALTER ROLE app PASSWORD",
        "CREATE ROLE r ENCRYPTED PASSWORD",
        "LOGIN",
        "shop",
    ] {
        assert!(t.contains(keep), "{keep} lost:\n{t}");
    }
}

fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut p = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    p.extend_from_slice(payload);
    p
}

#[test]
fn mysql_queries_and_handshake() {
    let mut greeting = vec![10];
    greeting.extend_from_slice(b"8.0.36\0");
    greeting.extend_from_slice(&[0x2a, 0x11, 0, 0]);
    greeting.extend_from_slice(b"abcdefgh\0");
    greeting.extend_from_slice(&[0xff, 0xff, 0x21, 0x02, 0, 0xff, 0xdf, 21]);
    greeting.extend_from_slice(&[0; 10]);
    greeting.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    let mut hs = Vec::new();
    hs.extend_from_slice(&(0x0000_a20du32 | 0x08).to_le_bytes());
    hs.extend_from_slice(&[0, 0, 0, 1, 0x21]);
    hs.extend_from_slice(&[0; 23]);
    hs.extend_from_slice(b"root\0");
    hs.push(8);
    hs.extend_from_slice(b"my-0-pwd");
    hs.extend_from_slice(b"shop\0");
    let mut q = vec![0x03];
    q.extend_from_slice(b"CREATE USER 'u'@'%' IDENTIFIED BY 'my-1'");
    let mut prep = vec![0x16];
    prep.extend_from_slice(b"SET PASSWORD FOR 'u'@'%' = 'my-2'");
    let conv = vec![
        (S, my_packet(0, &greeting)),
        (C, my_packet(1, &hs)),
        (S, my_packet(2, &[0, 0, 0, 2, 0, 0, 0])),
        (C, my_packet(0, &q)),
        (S, my_packet(1, &[0, 0, 0, 2, 0, 0, 0])),
        (C, my_packet(0, &prep)),
        (S, my_packet(1, &[0, 0, 0, 2, 0, 0, 0])),
    ];
    let es = run(DissectConfig::default(), 3306, &conv);
    assert_eq!(es.len(), 2, "{es:?}");
    let t = assert_hidden(&es, &["my-0-pwd", "my-1", "my-2"]);
    for keep in [
        "CREATE USER 'u'@'%' IDENTIFIED BY",
        "SET PASSWORD FOR 'u'@'%' =",
        "shop",
    ] {
        assert!(t.contains(keep), "{keep} lost:\n{t}");
    }
}

fn bson(elements: &[(u8, &str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, name, v) in elements {
        body.push(*t);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(v);
    }
    body.push(0);
    let mut d = (body.len() as i32 + 4).to_le_bytes().to_vec();
    d.extend(body);
    d
}

fn bson_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i32 + 1).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn op_msg(id: i32, resp_to: i32, doc: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&(16 + 4 + 1 + doc.len() as i32).to_le_bytes());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&resp_to.to_le_bytes());
    m.extend_from_slice(&2013i32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(doc);
    m
}

/// MongoDB and AMQP keep no credentials: the entries carry the command, never the payload.
#[test]
fn mongodb_and_amqp_keep_no_credentials() {
    let sasl = b"\0alice\0mongo-1";
    let mut bin = (sasl.len() as i32).to_le_bytes().to_vec();
    bin.push(0);
    bin.extend_from_slice(sasl);
    let start = bson(&[
        (0x10, "saslStart", 1i32.to_le_bytes().to_vec()),
        (0x02, "mechanism", bson_str("PLAIN")),
        (0x05, "payload", bin),
        (0x02, "$db", bson_str("admin")),
    ]);
    let create = bson(&[
        (0x02, "createUser", bson_str("bob")),
        (0x02, "pwd", bson_str("mongo-2")),
        (0x02, "$db", bson_str("admin")),
    ]);
    let ok = bson(&[(0x01, "ok", 1f64.to_le_bytes().to_vec())]);
    let conv = vec![
        (C, op_msg(1, 0, &start)),
        (S, op_msg(2, 1, &ok)),
        (C, op_msg(3, 0, &create)),
        (S, op_msg(4, 3, &ok)),
    ];
    let es = run(DissectConfig::default(), 27017, &conv);
    assert_eq!(es.len(), 2, "{es:?}");
    let t = text(&es);
    assert!(!t.contains("mongo-1") && !t.contains("mongo-2"), "{t}");
    assert!(t.contains("saslStart") && t.contains("createUser"), "{t}");

    let method = |class: u16, method: u16, args: &[u8]| {
        let mut p = class.to_be_bytes().to_vec();
        p.extend_from_slice(&method.to_be_bytes());
        p.extend_from_slice(args);
        let mut f = vec![1, 0, 0];
        f.extend_from_slice(&(p.len() as u32).to_be_bytes());
        f.extend(p);
        f.push(0xce);
        f
    };
    let mut start_args = vec![0, 9, 0, 0, 0, 0];
    start_args.extend_from_slice(&5u32.to_be_bytes());
    start_args.extend_from_slice(b"PLAIN");
    start_args.extend_from_slice(&5u32.to_be_bytes());
    start_args.extend_from_slice(b"en_US");
    let mut ok_args = 0u32.to_be_bytes().to_vec();
    ok_args.push(5);
    ok_args.extend_from_slice(b"PLAIN");
    let creds = b"\0guest\0amqp-1";
    ok_args.extend_from_slice(&(creds.len() as u32).to_be_bytes());
    ok_args.extend_from_slice(creds);
    ok_args.push(5);
    ok_args.extend_from_slice(b"en_US");
    let conv = vec![
        (C, b"AMQP\0\0\x09\x01".to_vec()),
        (S, method(10, 10, &start_args)),
        (C, method(10, 11, &ok_args)),
        (S, method(10, 30, &[0, 0, 0, 2, 0, 0, 0, 0x10, 0, 60])),
    ];
    let es = run(DissectConfig::default(), 5672, &conv);
    let t = text(&es);
    assert!(!es.is_empty(), "no amqp entry");
    assert!(!t.contains("amqp-1") && !t.contains("guest"), "{t}");
    assert!(t.contains("connection"), "{t}");
}
