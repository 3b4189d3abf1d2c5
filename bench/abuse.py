"""Abuse under load: does hostile traffic move normal users' latency? Loopback only.

Starts `digitnet serve`, measures 16 clients of normal traffic alone, then again while abusers replay
the worst inputs the adversarial probe found (issue 10): malformed EXIF, JSON nested 100,000 deep, a
5,000-digit integer, chunked bodies over the cap, dot grids that ask for unbounded work, full batches,
idle connections, headers that never finish and bodies that stall.

    python bench/abuse.py                 # 3000 normal requests per phase, 4 abusers, 24 slow sockets
    python bench/abuse.py -n 1000

Prints one table: normal-traffic p50/p99 without and with abuse and their ratio, and what the abuse got.
"""

from __future__ import annotations

import argparse
import http.client
import io
import socket
import struct
import sys
import threading
import time
import zlib

import numpy as np

from common import load_generator  # bench/ is on the path when this script runs

loadgen = load_generator()


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def abuse_requests() -> list[tuple[str, str, dict, bytes]]:
    """(label, path, headers, body) for each hostile request."""
    seven = np.full((112, 112), 255, np.uint8)
    seven[20:30, 20:90] = 0
    seven[30:95, 70:80] = 0
    good = _png(seven)
    exif = b"NOTATIFF"
    bad_exif = good[:-12] + struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(
        ">I", zlib.crc32(b"eXIf" + exif)) + good[-12:]
    dots = np.full((150, 3000), 255, np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            dots[dy::5, dx::5] = 0
    ctype, dots_body = loadgen._multipart(_png(dots))
    _, exif_body = loadgen._multipart(bad_exif)
    boundary = "abuse"
    batch = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{i}.png\"\r\n"
                     f"Content-Type: image/png\r\n\r\n".encode() + good + b"\r\n" for i in range(64))
    batch += f"--{boundary}--\r\n".encode()
    json_h = {"Content-Type": "application/json"}
    return [
        ("malformed EXIF", "/api/predict", {"Content-Type": ctype}, exif_body),
        ("JSON 100,000 deep", "/api/predict", json_h, b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("5,000-digit integer", "/api/predict", json_h, b'{"pixels": [' + b"9" * 5000 + b"]}"),
        ("dot grid", "/api/predict", {"Content-Type": ctype}, dots_body),
        ("64-file batch", "/api/predict/batch", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, batch),
        ("chunked over the cap", "/api/predict", {**json_h, "Transfer-Encoding": "chunked"}, b"x" * 6_000_000),
    ]


def abuser(port: int, stop: threading.Event, counts: dict, lock: threading.Lock) -> None:
    requests = abuse_requests()
    i = 0
    while not stop.is_set():
        label, path, headers, body = requests[i % len(requests)]
        i += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            if headers.get("Transfer-Encoding") == "chunked":
                conn.putrequest("POST", path)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                for j in range(0, len(body), 65536):
                    part = body[j : j + 65536]
                    conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.request("POST", path, body=body, headers=headers)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            status = -1  # the server closed on us: fine for hostile traffic
        finally:
            conn.close()
        with lock:
            counts.setdefault(label, {}).setdefault(status, 0)
            counts[label][status] += 1


def slow_sockets(port: int, stop: threading.Event, n: int, closed: list) -> None:
    """Keep ``n`` connections open that are idle, send half a header, or stall their body."""
    starts = [b"", b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n",
              b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9999\r\n\r\n{"]
    socks: list[socket.socket] = []
    while not stop.is_set():
        while len(socks) < n:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(starts[len(socks) % len(starts)])
            s.setblocking(False)
            socks.append(s)
        for s in list(socks):
            try:
                if s.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue  # still open
            except OSError:
                pass
            closed[0] += 1  # the server closed it: replace it
            socks.remove(s)
            s.close()
        time.sleep(0.5)
    for s in socks:
        s.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=3000, help="normal requests per phase (default: 3000)")
    p.add_argument("-c", type=int, default=16, help="normal clients (default: 16)")
    p.add_argument("--abusers", type=int, default=4, help="threads replaying hostile requests (default: 4)")
    p.add_argument("--slow", type=int, default=24, help="idle or stalled connections held open (default: 24)")
    args = p.parse_args()
    proc, url = loadgen.start_server()
    port = int(url.rsplit(":", 1)[1])
    try:
        loadgen.run_load(url, n=200, concurrency=args.c, bad_fraction=0.0, pid=proc.pid)  # warm-up
        calm = loadgen.run_load(url, n=args.n, concurrency=args.c, bad_fraction=0.0, pid=proc.pid)
        stop, lock, counts, closed = threading.Event(), threading.Lock(), {}, [0]
        threads = [threading.Thread(target=abuser, args=(port, stop, counts, lock)) for _ in range(args.abusers)]
        threads.append(threading.Thread(target=slow_sockets, args=(port, stop, args.slow, closed)))
        for t in threads:
            t.start()
        time.sleep(2)  # let the abuse reach full strength
        stormy = loadgen.run_load(url, n=args.n, concurrency=args.c, bad_fraction=0.0, pid=proc.pid)
        stop.set()
        for t in threads:
            t.join(90)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"| normal traffic ({args.c} clients, {args.n} requests) | p50 ms | p99 ms | req/s | failed |")
    print("|---|---|---|---|---|")
    for name, r in (("alone", calm), (f"with {args.abusers} abusers + {args.slow} slow sockets", stormy)):
        print(f"| {name} | {r.pct(50):.1f} | {r.pct(99):.1f} | {r.rps:.0f} | {len(r.good_failures)} |")
    print(f"\np99 ratio (with abuse / alone): {stormy.pct(99) / calm.pct(99):.2f}x; "
          f"p50 ratio {stormy.pct(50) / calm.pct(50):.2f}x; server alive after: {alive}")
    print("\n| hostile request | answers (status: count) |")
    print("|---|---|")
    for label, statuses in counts.items():
        print(f"| {label} | {', '.join(f'{s}: {c}' for s, c in sorted(statuses.items()))} |")
    print(f"| idle / half-header / stalled-body sockets | {closed[0]} closed by the server |")
    server_errors = sum(c for st in counts.values() for s, c in st.items() if s >= 500)
    return 0 if alive and not stormy.good_failures and not server_errors else 1


if __name__ == "__main__":
    sys.exit(main())
