#!/usr/bin/env python3
"""Checks wiremap's live map stream (/api/stream) from outside, with a WebSocket client
written against RFC 6455 on a plain socket: snapshot then deltas every 500 ms with
increasing sequence numbers, pause stops deltas and resume applies what was held back,
and a client that stops reading does not make the server hold more memory.

    wsprobe.py HOST:PORT PID   (PID: the wiremap process, for its memory)
Prints one `ok`/`FAIL` line per check and exits non-zero on a failure."""
import base64, json, os, socket, struct, sys, time

def connect(addr, path, rcvbuf=None, origin=None):
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if origin:
        req += f"Origin: {origin}\r\n"
    s.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    return s, status

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def recv(s, timeout):
    """One whole message (text), or None on timeout."""
    s.settimeout(timeout)
    try:
        data = b""
        while True:
            h = recv_exact(s, 2)
            fin, op, ln = h[0] & 0x80, h[0] & 0x0F, h[1] & 0x7F
            if ln == 126:
                ln = struct.unpack(">H", recv_exact(s, 2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", recv_exact(s, 8))[0]
            payload = recv_exact(s, ln)
            if op == 9:  # ping
                continue
            data += payload
            if fin:
                return json.loads(data)
    except socket.timeout:
        return None
    finally:
        s.settimeout(None)

def send(s, obj):
    p = json.dumps(obj).encode()
    mask = os.urandom(4)
    h = bytes([0x81])
    h += bytes([0x80 | len(p)]) if len(p) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(p))
    s.sendall(h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p)))

def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

fails = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)

def main():
    addr, pid = sys.argv[1], int(sys.argv[2])
    # Foreign origins are refused before the upgrade.
    s, status = connect(addr, "/api/stream", origin="http://evil.example")
    check(" 403" in status, f"foreign Origin refused ({status})")
    s.close()
    s, status = connect(addr, "/api/stream?q=" + "http%20%26%26", origin=f"http://{addr}")
    check(" 400" in status, f"invalid KFL refused before the upgrade ({status})")
    s.close()

    s, status = connect(addr, "/api/stream?level=workload&from=-10m", origin=f"http://{addr}")
    check(" 101" in status, f"upgrade ({status})")
    first = recv(s, 5)
    check(first is not None and first["type"] == "snapshot" and "nodes" in first["map"], "first message is a full snapshot")
    s0 = first["seq"] if first else 0
    times, seqs, upserts = [], [], 0
    t_end = time.time() + 4.2
    while time.time() < t_end:
        m = recv(s, 2)
        if m is None:
            break
        times.append(time.time()); seqs.append(m["seq"])
        if m["type"] == "delta":
            upserts += len(m["upsert"]["edges"]) + len(m["upsert"]["nodes"])
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean = sum(gaps) / len(gaps) if gaps else 0
    check(len(seqs) >= 6 and seqs == list(range(s0 + 1, s0 + 1 + len(seqs))), f"deltas with consecutive sequence numbers after the snapshot ({len(seqs)} in 4.2 s)")
    check(0.35 <= mean <= 0.8, f"deltas every 500 ms (mean gap {mean*1000:.0f} ms)")
    check(upserts > 0, f"deltas carry the changing edges and nodes ({upserts} upserts)")

    send(s, {"type": "pause"})
    ack = recv(s, 2)
    while ack is not None and ack["type"] != "paused":
        ack = recv(s, 2)
    check(ack is not None, "pause acknowledged")
    held = recv(s, 2.0)
    check(held is None, "no deltas while paused")
    send(s, {"type": "resume"})
    m = recv(s, 2)
    check(m is not None and m["type"] == "delta" and len(m["upsert"]["edges"]) > 0, "resume applies what changed while paused")
    s.close()

    # A client that stops reading: the server must not queue for it.
    before = rss_kb(pid)
    slow, status = connect(addr, "/api/stream?level=ip&from=-10m", rcvbuf=4096, origin=f"http://{addr}")
    fast, _ = connect(addr, "/api/stream?level=ip&from=-10m", origin=f"http://{addr}")
    n_fast = 0
    t_end = time.time() + 6
    peak = before
    while time.time() < t_end:
        if recv(fast, 1) is not None:
            n_fast += 1
        peak = max(peak, rss_kb(pid))
    # Now drain the slow one: what arrives is a few coalesced messages, not one per tick.
    got = []
    t_end = time.time() + 1.5
    while time.time() < t_end:
        m = recv(slow, 0.5)
        if m is not None:
            got.append(m)
    after = rss_kb(pid)
    # Each delta leads to the tick after the one the client is at; a snapshot (sent to a
    # client that fell behind) resets it.
    def consecutive(msgs):
        at = None
        for m in msgs:
            if m["type"] == "snapshot":
                at = m["seq"]
            elif at is None or m["seq"] != at + 1:
                return False
            else:
                at = m["seq"]
        return True
    check(n_fast >= 10, f"a reading client got {n_fast} messages meanwhile")
    check(bool(got) and got[0]["type"] == "snapshot" and consecutive(got), "slow client: deltas consecutive after each snapshot (nothing dropped mid-stream)")
    check((peak - before) < 20 * 1024, f"server memory bounded with a stalled client (RSS {before} -> peak {peak} kB)")
    print(f"wsprobe: slow client received {len(got)} messages for {n_fast} sent to the fast one; RSS {before} -> {peak} -> {after} kB")
    slow.close(); fast.close()
    sys.exit(1 if fails else 0)

main()
