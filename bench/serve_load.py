"""Load test for `digitnet serve`: a bounded run of requests at fixed concurrency, on loopback only.

Mixes good images with a share of bad ones (garbage bytes, empty files, wrong JSON, wrong content type)
and checks that no good request fails and every bad one gets a 4xx. Reports requests/s, latency
percentiles and the server's memory before and after.

    python bench/serve_load.py                       # starts its own server: 5000 requests, concurrency 32
    python bench/serve_load.py --processes 1 2       # one server per count, in turn: `serve --processes N`
    python bench/serve_load.py --url http://127.0.0.1:8000 --pid PID
"""

from __future__ import annotations

import argparse
import sys

from common import load_generator  # bench/ is on the path when this script runs

loadgen = load_generator()
start_server, run_load = loadgen.start_server, loadgen.run_load


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server on loopback (default: start one)")
    p.add_argument("--pid", type=int, help="its process id, to read its memory")
    p.add_argument("--model", help="model for the server this script starts (default: the default model)")
    p.add_argument("--processes", type=int, nargs="+", default=[1], metavar="N",
                   help="server processes (`serve --processes N`) for each server this script starts (default: 1)")
    p.add_argument("-n", type=int, default=5000, help="requests (default: 5000)")
    p.add_argument("-c", type=int, default=32, help="concurrency (default: 32)")
    p.add_argument("--bad", type=float, default=0.1, help="share of bad requests (default: 0.1)")
    args = p.parse_args()
    rows = []
    for processes in ([None] if args.url else args.processes):
        proc, url, pid = None, args.url, args.pid
        if url is None:
            proc, url = start_server(args.model, processes=processes)
            pid = proc.pid if processes == 1 else None  # with workers, the pid is the supervisor's
        try:
            run_load(url, n=200, concurrency=args.c, pid=pid)  # warm-up: first traces, allocator pools
            rows.append((processes, run_load(url, n=args.n, concurrency=args.c, bad_fraction=args.bad, pid=pid)))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(20)
    print("| processes | requests | concurrency | bad share | req/s | vs first | p50 ms | p95 ms | p99 ms "
          "| good failed | bad not 4xx | RSS before MB | RSS after MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for processes, r in rows:
        rss = (f"{r.rss_before_mb:.0f} | {r.rss_after_mb:.0f}" if r.rss_before_mb else "- | -")
        print(f"| {processes or '?'} | {r.requests} | {args.c} | {args.bad:.0%} | {r.rps:.0f} | "
              f"{r.rps / rows[0][1].rps:.2f}x | {r.pct(50):.1f} | {r.pct(95):.1f} | {r.pct(99):.1f} | "
              f"{len(r.good_failures)} | {len(r.bad_not_4xx)} | {rss} |")
        print(f"statuses: {dict(sorted(r.status_counts.items()))}")
    return 0 if all(not r.good_failures and not r.bad_not_4xx for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
