"""A bounded load generator for a digitnet server on loopback, shared by the serving tests and bench/serve_load.py.

Mixes good images with a share of bad ones (garbage bytes, empty files, wrong JSON, wrong content type)
and records, per request, the status and latency; it refuses any address but loopback.
"""

from __future__ import annotations

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
    answered_by: list[tuple[float, str]]  # (perf_counter at the answer, X-Digitnet-Model-Version) per 200

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
    latencies, good_failures, bad_not_4xx, counts, answered_by = [], [], [], {}, []
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
                version = resp.getheader("X-Digitnet-Model-Version")
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
                if status == 200:
                    answered_by.append((time.perf_counter(), version))
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
    return LoadResult(len(latencies), seconds, latencies, good_failures, bad_not_4xx, counts, before, rss_mb(pid),
                      answered_by)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | None = None, env: dict | None = None, stderr=subprocess.DEVNULL,
                 processes: int = 1) -> tuple[subprocess.Popen, str]:
    """Start `digitnet serve` on a free loopback port; return once ``processes`` different pids have
    answered /healthz (each on a new connection), so that every worker is ready."""
    import json
    import os

    port = free_port()
    cmd = [sys.executable, "-m", "digitnet", "-q", "serve", "--port", str(port), "--processes", str(processes)] + (
        ["--model", model] if model else [])
    proc = subprocess.Popen(cmd, stderr=stderr, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    pids: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            pids.add(json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=2).read())["pid"])
            if len(pids) >= processes:
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start ({len(pids)} of {processes} processes answered)")
