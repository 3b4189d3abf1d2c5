"""`digitnet serve` as a real process: the short load test and a slow client."""

import socket
import threading
import time
import urllib.request

import pytest

import loadgen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    from digitnet.inference import shipped_model_path

    proc, url = loadgen.start_server(str(shipped_model_path()))
    yield proc, url
    proc.terminate()
    proc.wait(10)


def test_load_short_form(server):
    proc, url = server
    loadgen.run_load(url, n=100, concurrency=32, pid=proc.pid)  # warm-up
    r = loadgen.run_load(url, n=1500, concurrency=32, bad_fraction=0.1, pid=proc.pid)
    print(f"{r.requests} requests: {r.rps:.0f} req/s, p50 {r.pct(50):.1f} ms, p99 {r.pct(99):.1f} ms, "
          f"RSS {r.rss_before_mb:.0f} -> {r.rss_after_mb:.0f} MB, statuses {r.status_counts}")
    assert r.requests == 1500
    assert r.good_failures == []  # no 503 for 32 concurrent clients, no 5xx
    assert r.bad_not_4xx == []
    assert 503 not in r.status_counts and all(s < 500 for s in r.status_counts)
    assert r.rss_after_mb <= 1.2 * r.rss_before_mb


def test_slow_client_does_not_block_others(server):
    _, url = server
    host, port = url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    body_len = 5000
    slow.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
                 f"boundary=x\r\nContent-Length: {body_len}\r\n\r\n".encode())
    stop = threading.Event()

    def dribble():
        while not stop.is_set():
            try:
                slow.send(b"x")
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=dribble)
    t.start()
    try:
        times = []
        for _ in range(10):
            start = time.perf_counter()
            with urllib.request.urlopen(f"{url}/api/model", timeout=5) as resp:
                assert resp.status == 200
            times.append(time.perf_counter() - start)
        assert max(times) < 1.0, times
    finally:
        stop.set()
        t.join()
        slow.close()
