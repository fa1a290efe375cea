#!/usr/bin/env python3
"""Crafted hostile captures and the report of what `wiremap` makes of them.

Driven by `scripts/hostile` (which builds the binary, makes sure GNU time is there and owns
the temporary directory):

    hostile.py run BINARY TMPDIR [CASE…]     every case (or the named ones), then the table
    hostile.py gen CASE FILE                 just write one capture (to look at it)

Each capture is written at run time (classic pcap, Ethernet, microsecond timestamps 1 µs
apart so no idle timeout tidies up for us; checksums are left zero, wiremap does not check
them), mapped with `wiremap map FILE --level ip` under `/usr/bin/time -v`, and deleted before
the next one is written. A row gives size, packets, wall time, peak RSS, map nodes and the
non-zero `stats.dropped` counters. It is a report, not a test: the exit status is 1 only when
the binary crashed (exit status above 2, a signal or a timeout) or a secret leaked.
"""

import json
import os
import re
import struct
import subprocess
import sys
import time

BASE_SECONDS = 1_700_000_000
ETH_C2S = bytes.fromhex("020000000002" "020000000001" "0800")
ETH_S2C = bytes.fromhex("020000000001" "020000000002" "0800")
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
TCP, UDP = 6, 17
MSS = 1400
RSS_ALARM_MB = 200
TIMEOUT_S = int(os.environ.get("HOSTILE_TIMEOUT", "300"))


def ip(text):
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


class Pcap:
    """Classic little-endian pcap writer; one packet every microsecond."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.buf = []
        self.held = 0
        self.packets = 0

    def frame(self, eth, proto, src, dst, l4, payload):
        total = 20 + len(l4) + len(payload)
        iph = struct.pack(
            "!BBHHHBBHII", 0x45, 0, total, self.packets & 0xFFFF, 0x4000, 64, proto, 0, src, dst
        )
        t = BASE_SECONDS * 1_000_000 + self.packets
        n = 14 + total
        self.buf.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, n, n))
        self.buf.append(eth)
        self.buf.append(iph)
        self.buf.append(l4)
        if payload:
            self.buf.append(payload)
        self.packets += 1
        self.held += n + 16
        if self.held > 8 << 20:
            self.flush()

    def tcp(self, src, dst, sport, dport, seq, ack, flags, payload=b"", c2s=True):
        l4 = struct.pack(
            "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0
        )
        self.frame(ETH_C2S if c2s else ETH_S2C, TCP, src, dst, l4, payload)

    def udp(self, src, dst, sport, dport, payload, c2s=True):
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
        self.frame(ETH_C2S if c2s else ETH_S2C, UDP, src, dst, l4, payload)

    def flush(self):
        self.f.write(b"".join(self.buf))
        self.buf = []
        self.held = 0

    def close(self):
        self.flush()
        self.f.close()
        return self.packets


class Conn:
    """One TCP conversation; tracks both sequence numbers so reassembly sees what we mean."""

    def __init__(self, w, cip, sip, cport, sport, isn=1000):
        self.w, self.cip, self.sip, self.cport, self.sport = w, cip, sip, cport, sport
        self.cseq = isn  # next byte the client sends
        self.sseq = isn * 7 + 12345  # next byte the server sends

    def syn(self):
        self.w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, 0, SYN)
        self.cseq += 1

    def synack(self):
        self.w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, SYN | ACK, c2s=False)
        self.sseq += 1

    def handshake(self):
        self.syn()
        self.synack()
        self.w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK)

    def client(self, data, skip=0):
        """Client data starting `skip` bytes past the next expected byte (a hole if > 0)."""
        self.w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq + skip, self.sseq, PSH | ACK, data)
        self.cseq += skip + len(data)

    def server(self, data):
        self.w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, PSH | ACK, data, c2s=False)
        self.sseq += len(data)

    def close(self):
        self.w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, FIN | ACK)
        self.cseq += 1
        self.w.tcp(self.sip, self.cip, self.sport, self.cport, self.sseq, self.cseq, FIN | ACK, c2s=False)
        self.sseq += 1
        self.w.tcp(self.cip, self.sip, self.cport, self.sport, self.cseq, self.sseq, ACK)


SERVER = ip("10.9.0.1")


def gen_half_open(w, flows=200_000, sources=32):
    # Many half-open flows from few addresses: the flow table, not the map, is what grows.
    for i in range(flows):
        src = ip("10.1.0.1") + i % sources
        w.tcp(src, SERVER, 1024 + i // sources, 80, 1000 + i, 0, SYN)


def gen_syn_flood(w, syns=2_000_000, sources=125_000):
    # Spoofed flood: every source is a new map node unless the map folds its long tail.
    base = ip("100.64.0.1")
    for i in range(syns):
        w.tcp(base + i % sources, SERVER, 1024 + i // sources, 443, 7 * i, 0, SYN)


def gen_gap_flows(w, flows=200_000):
    # A hole that is never filled: the out-of-order buffer holds the segment after it.
    payload = b"x" * 200
    for i in range(flows):
        c = Conn(w, ip("10.2.0.1") + i % 1000, SERVER, 1024 + i // 1000, 8080, isn=1000 + i)
        c.syn()
        c.synack()
        c.client(payload, skip=1000)


def gen_http_heads(w, flows=5_000, head=60 * 1024):
    # Request heads that never end (no blank line): the HTTP dissector buffers every one.
    text = (b"GET / HTTP/1.1\r\nX-A: " + b"a" * head)[:head]
    conns = [Conn(w, ip("10.3.0.1") + i % 250, SERVER, 1024 + i // 250, 80, isn=5000 + i) for i in range(flows)]
    for c in conns:
        c.handshake()
    # Round-robin, so every flow is as recently active as the others.
    for off in range(0, head, MSS):
        for c in conns:
            c.client(text[off : off + MSS])


def gen_pg_big_queries(w, flows=30, declared=8 << 20):
    # A simple Query declaring 8 MiB, sent in full but for its final NUL: the message never
    # completes, so framing has to hold (or skip) it.
    startup_body = struct.pack("!I", 196608) + b"user\0app\0database\0shop\0\0"
    startup = struct.pack("!I", 4 + len(startup_body)) + startup_body
    auth_ok = b"R" + struct.pack("!II", 8, 0)
    ready = b"Z" + struct.pack("!I", 5) + b"I"
    prefix = b"SELECT '"
    text = prefix + b"q" * (declared - 4 - len(prefix) - 2) + b"'"  # + NUL never sent
    query = b"Q" + struct.pack("!I", declared) + text
    conns = [Conn(w, ip("10.4.0.1") + i, SERVER, 40000 + i, 5432, isn=9000 + i) for i in range(flows)]
    for c in conns:
        c.handshake()
        c.client(startup)
        c.server(auth_ok + ready)
    for off in range(0, len(query), MSS):
        seg = query[off : off + MSS]
        for c in conns:
            c.client(seg)


def dns_messages(qid, name, addr):
    """A query for `name` (A, IN) and its answer `addr`."""
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    question = q + struct.pack("!HH", 1, 1)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + struct.pack("!I", addr)
    return query, struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer


def gen_dns_names(w, names=100_000):
    # Every answer teaches identity a name for a new address, then a connection uses it.
    # Queries go along so that the answers match (an unmatched answer is counted, not learnt).
    resolver, client = ip("10.5.0.53"), ip("10.5.0.10")
    base = ip("172.16.0.1")
    for i in range(names):
        addr = base + i
        port = 20000 + i % 40000
        query, answer = dns_messages(i & 0xFFFF, f"host{i}.example.", addr)
        w.udp(client, resolver, port, 53, query)
        w.udp(resolver, client, 53, port, answer, c2s=False)
        w.tcp(client, addr, 30000 + i % 30000, 443, 100 + i, 0, SYN)


def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


SECRET = b"s3cretpass"


def gen_redis_auth(w):
    c = Conn(w, ip("10.6.0.10"), ip("10.6.0.1"), 50000, 6379)
    c.handshake()
    c.client(resp(b"AUTH", SECRET))
    c.server(b"+OK\r\n")
    c.client(resp(b"SET", b"k", b"v"))
    c.server(b"+OK\r\n")
    c.close()


# name -> (generator, how it is run)
CASES = {
    "half-open-flows": (gen_half_open, "map"),
    "syn-flood-125k": (gen_syn_flood, "map"),
    "gap-flows": (gen_gap_flows, "map"),
    "http-heads-5k": (gen_http_heads, "map"),
    "pg-big-queries-30": (gen_pg_big_queries, "map"),
    "dns-names": (gen_dns_names, "map"),
    "redis-auth": (gen_redis_auth, "entries"),
    "kfl-chain-plus": (None, "kfl"),
    "kfl-chain-or": (None, "kfl"),
}


def generate(name, path):
    w = Pcap(path)
    CASES[name][0](w)
    return w.close()


def timed(cmd, tmp, stdout_path):
    """Runs cmd under GNU time; returns (exit status or None, signal or None, wall s, peak MB, stderr)."""
    tfile = os.path.join(tmp, "time.txt")
    efile = os.path.join(tmp, "stderr.txt")
    full = ["/usr/bin/time", "-v", "-o", tfile, "timeout", "-s", "KILL", str(TIMEOUT_S)] + cmd
    with open(stdout_path, "wb") as out, open(efile, "wb") as err:
        subprocess.run(full, stdout=out, stderr=err, check=False)
    rep = open(tfile, encoding="utf-8", errors="replace").read()
    status = sig = None
    m = re.search(r"Command terminated by signal (\d+)", rep)
    if m:
        sig = int(m.group(1))
    m = re.search(r"Exit status: (\d+)", rep)
    if m:
        status = int(m.group(1))
    wall = 0.0
    m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", rep)
    if m:
        wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rep)
    peak = int(m.group(1)) / 1024 if m else 0.0
    stderr = open(efile, encoding="utf-8", errors="replace").read()
    return status, sig, wall, peak, stderr


def verdict(status, sig):
    """FAIL for a crash: a signal, a timeout (124, or KILL from timeout) or any status above 2."""
    if sig is not None:
        return f"FAIL (signal {sig})"
    if status is None or status > 2:
        return "FAIL (timeout)" if status in (124, 137) else f"FAIL (exit {status})"
    return "ok" if status == 0 else f"exit {status}"


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:90].replace("|", "\\|")
    return ""


def run_map_case(binary, tmp, name):
    cap = os.path.join(tmp, name + ".pcap")
    t0 = time.monotonic()
    packets = generate(name, cap)
    gen_s = time.monotonic() - t0
    size_mb = os.path.getsize(cap) / 1e6
    out = os.path.join(tmp, "out.json")
    status, sig, wall, peak, stderr = timed([binary, "map", cap, "--level", "ip"], tmp, out)
    os.remove(cap)
    row = dict(case=name, size=f"{size_mb:.0f}", packets=str(packets), wall=f"{wall:.1f}", rss=f"{peak:.0f}",
               nodes="-", result=verdict(status, sig), losses="", gen=f"{gen_s:.1f}")
    try:
        doc = json.load(open(out))
        row["nodes"] = str(len(doc.get("nodes", [])))
        dropped = doc.get("stats", {}).get("dropped", {})
        row["losses"] = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()) if v)
        if str(doc.get("stats", {}).get("packets", packets)) != str(packets):
            row["losses"] += f" (read {doc['stats']['packets']} packets)"
    except (OSError, ValueError) as e:
        row["losses"] = f"no map: {first_line(stderr) or e}"
    return row


def run_redis_case(binary, tmp, name):
    cap = os.path.join(tmp, name + ".pcap")
    packets = generate(name, cap)
    out = os.path.join(tmp, "entries.jsonl")
    status, sig, wall, peak, stderr = timed([binary, "entries", cap], tmp, out)
    text = open(out, "rb").read()
    entries = sum(1 for line in text.splitlines() if line.strip())
    leaked = SECRET in text or SECRET.decode() in stderr
    row = dict(case=name, size=f"{os.path.getsize(cap) / 1e6:.3f}", packets=str(packets), wall=f"{wall:.1f}",
               rss=f"{peak:.0f}", nodes="-", result=verdict(status, sig), gen="0.0",
               losses=f"{entries} entries; " + ("LEAK: s3cretpass in the output" if leaked else "secret not in output"))
    if leaked:
        row["result"] = "FAIL (LEAK)"
    return row


def run_kfl_case(binary, tmp, name):
    if name == "kfl-chain-plus":
        expr = "+".join(["1"] * 10_000)
        cmd = [binary, "kfl", "check", expr]
        what = "kfl check 1+1+…+1 (10,000 terms)"
    else:
        # Compact and single-digit ports so the argument stays under the kernel's 128 KiB limit
        # for one argv string (with spaces and distinct ports it would be ~200 KB).
        expr = "||".join(f"src.port=={1 + i % 9}" for i in range(10_000))
        cap = os.path.join(tmp, "small.pcap")
        generate("redis-auth", cap)
        cmd = [binary, "map", cap, "--filter", expr]
        what = "map --filter src.port==N||… (10,000 terms)"
    status, sig, wall, peak, stderr = timed(cmd, tmp, os.path.join(tmp, "out.txt"))
    note = f"{what}, {len(expr) // 1024} KiB: exit {status if sig is None else 'signal ' + str(sig)}"
    msg = first_line(stderr)
    if msg:
        note += f" — {msg}"
    return dict(case=name, size="-", packets="-", wall=f"{wall:.1f}", rss=f"{peak:.0f}", nodes="-",
                result=verdict(status, sig), losses=note, gen="-")


def table(rows):
    head = ["case", "capture MB", "packets", "gen s", "wall s", "peak RSS MB", "nodes", "result", "counted losses / notes"]
    keys = ["case", "size", "packets", "gen", "wall", "rss", "nodes", "result", "losses"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r[k] or "—" for k in keys]
        if r["rss"] not in ("-", "") and float(r["rss"]) > RSS_ALARM_MB:
            cells[5] = f"**{r['rss']}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(binary, tmp, names):
    rows = []
    for name in names:
        kind = CASES[name][1]
        print(f"hostile: {name} …", file=sys.stderr, flush=True)
        if kind == "map":
            row = run_map_case(binary, tmp, name)
        elif kind == "entries":
            row = run_redis_case(binary, tmp, name)
        else:
            row = run_kfl_case(binary, tmp, name)
        print(f"hostile: {name}: {row['result']}, {row['wall']} s, peak RSS {row['rss']} MB, "
              f"{row['losses'] or 'nothing counted'}", file=sys.stderr, flush=True)
        rows.append(row)
    print(table(rows))
    print(f"\nPeak RSS above {RSS_ALARM_MB} MB is in bold. FAIL = crash (signal, timeout or exit > 2) or leaked secret.")
    return 1 if any(r["result"].startswith("FAIL") for r in rows) else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "run":
        names = argv[3:] or list(CASES)
        unknown = [n for n in names if n not in CASES]
        if unknown:
            sys.exit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")
        return run(argv[1], argv[2], names)
    if len(argv) == 3 and argv[0] == "gen" and CASES.get(argv[1], (None,))[0]:
        print(f"{generate(argv[1], argv[2])} packets")
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
