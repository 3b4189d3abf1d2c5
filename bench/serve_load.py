"""Load test for `digitnet serve`: a bounded run of requests at fixed concurrency, on loopback only.

Mixes good images with a share of bad ones (garbage bytes, empty files, wrong JSON, wrong content type)
and checks that no good request fails and every bad one gets a 4xx. Reports requests/s, latency
percentiles and the server's memory before and after.

    python bench/serve_load.py                       # starts its own server: 5000 requests, concurrency 32
    python bench/serve_load.py --url http://127.0.0.1:8000 --pid PID
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

import numpy as np


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    good_failures: list[str]
    bad_not_4xx: list[str]
    status_counts: dict[int, int]
    rss_before_mb: float | None
    rss_after_mb: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


def payloads(n_good: int = 16):
    """Good multipart PNG uploads made from MNIST test digits, and a set of bad requests."""
    from PIL import Image

    from digitnet.data import load_mnist

    (_, _), (x, _) = load_mnist()
    good = []
    for i in range(n_good):
        buf = io.BytesIO()
        Image.fromarray(255 - x[i]).resize((112, 112), Image.Resampling.BICUBIC).save(buf, format="PNG")
        good.append(_multipart(buf.getvalue()))
    bad = [
        _multipart(b"this is not an image"),
        _multipart(b""),
        ("application/json", json.dumps({"pixels": [[1, 2], [3, 4]]}).encode()),
        ("text/plain", b"hello"),
        ("application/json", b"{broken"),
    ]
    return good, bad


def _multipart(data: bytes) -> tuple[str, bytes]:
    boundary = "digitnetboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def run_load(url: str, n: int = 5000, concurrency: int = 32, bad_fraction: float = 0.1, pid: int | None = None,
             max_seconds: float = 600) -> LoadResult:
    u = urllib.parse.urlparse(url)
    host, port = u.hostname, u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load test only targets loopback addresses")
    good, bad = payloads()
    rng = np.random.default_rng(0)
    plan = [(bool(rng.random() < bad_fraction), int(rng.integers(0, 1 << 30))) for _ in range(n)]
    lock = threading.Lock()
    latencies, good_failures, bad_not_4xx, counts = [], [], [], {}
    next_index = [0]
    deadline = time.time() + max_seconds

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while time.time() < deadline:
            with lock:
                if next_index[0] >= n:
                    break
                is_bad, pick = plan[next_index[0]]
                next_index[0] += 1
            ctype, body = (bad[pick % len(bad)] if is_bad else good[pick % len(good)])
            t = time.perf_counter()
            try:
                conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                status, payload = -1, str(e).encode()
            ms = (time.perf_counter() - t) * 1000
            with lock:
                latencies.append(ms)
                counts[status] = counts.get(status, 0) + 1
                if not is_bad and status != 200:
                    good_failures.append(f"{status} {payload[:200]!r}")
                if is_bad and not 400 <= status < 500:
                    bad_not_4xx.append(f"{status} {payload[:200]!r}")
        conn.close()

    before = rss_mb(pid)
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return LoadResult(len(latencies), seconds, latencies, good_failures, bad_not_4xx, counts, before, rss_mb(pid))


def start_server(model: str | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "digitnet", "-q", "serve", "--port", str(port)] + (["--model", model] if model else [])
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server on loopback (default: start one)")
    p.add_argument("--pid", type=int, help="its process id, to read its memory")
    p.add_argument("--model", help="model for the server this script starts (default: the default model)")
    p.add_argument("-n", type=int, default=5000, help="requests (default: 5000)")
    p.add_argument("-c", type=int, default=32, help="concurrency (default: 32)")
    p.add_argument("--bad", type=float, default=0.1, help="share of bad requests (default: 0.1)")
    args = p.parse_args()
    proc = None
    url, pid = args.url, args.pid
    if url is None:
        proc, url = start_server(args.model)
        pid = proc.pid
    try:
        run_load(url, n=200, concurrency=args.c, pid=pid)  # warm-up: first traces, allocator pools
        r = run_load(url, n=args.n, concurrency=args.c, bad_fraction=args.bad, pid=pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    print("| requests | concurrency | bad share | req/s | p50 ms | p95 ms | p99 ms | good failed | bad not 4xx "
          "| RSS before MB | RSS after MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rss = (f"{r.rss_before_mb:.0f} | {r.rss_after_mb:.0f}" if r.rss_before_mb else "- | -")
    print(f"| {r.requests} | {args.c} | {args.bad:.0%} | {r.rps:.0f} | {r.pct(50):.1f} | {r.pct(95):.1f} | "
          f"{r.pct(99):.1f} | {len(r.good_failures)} | {len(r.bad_not_4xx)} | {rss} |")
    print(f"statuses: {dict(sorted(r.status_counts.items()))}")
    return 0 if not r.good_failures and not r.bad_not_4xx else 1


if __name__ == "__main__":
    sys.exit(main())
