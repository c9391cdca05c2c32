"""Where an idle authenticated dashboard socket's memory goes (issue 21, M2), by allocating line.

    python -m bench.socket_memory [--sockets N] [--frames F] [--top K]

Our server as bench M2 runs it (`bench.serve_ours`, exactly as `haltless serve`), under `tracemalloc`. The load
generator opens 200 sockets and closes them (allocators and caches warm), the server dumps a snapshot, the load
generator opens N authenticated idle sockets, and the server dumps another. The difference divided by N is
listed by allocating line: the innermost frame, or `--frames` frames of each traceback. `tracemalloc` sees
Python's own allocations only (uvloop's transports and the kernel's socket buffers are not in it), so its total
is below M2's RSS growth per socket. Not part of `make bench`: it is how the M2 sections of docs/benchmarks.md
find what to take out next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import fanout
from bench.ports import free_port

WARM_SOCKETS = 200


def _snapshot(process: subprocess.Popen[str], path: Path) -> tracemalloc.Snapshot:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(f"snapshot {path}\n")
    process.stdin.flush()
    if process.stdout.readline().strip() != "snapshot":
        raise RuntimeError("the server did not dump its snapshot")
    return tracemalloc.Snapshot.load(str(path)).filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*"))
    )


def measure(sockets: int, frames: int) -> tuple[tracemalloc.Snapshot, tracemalloc.Snapshot]:
    """Snapshots of our server's allocations before and after `sockets` idle authenticated sockets."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        secret = secrets.token_hex(32)
        made = asyncio.run(fanout._create_tenants(fanout.sqlite_url(data_dir), secret, 1))
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve_ours"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdin is not None
        job = {"data_dir": str(data_dir), "jwt_secret": secret, "port": port, "tracemalloc": frames}
        process.stdin.write(json.dumps(job) + "\n")
        process.stdin.flush()
        fanout.pin(process.pid, fanout.SERVER_CPU)
        server = fanout.Server("ours", process, port, port)
        try:
            fanout.wait_healthy(server, 60.0)
            fanout._populate(server, made)
            warm, _ = fanout._idle_sockets(server, WARM_SOCKETS)
            fanout._release(warm)
            time.sleep(1.0)  # as fanout.idle_memory: the server has seen the warm-up sockets close
            before = _snapshot(process, Path(tmp) / "before")
            held, _ = fanout._idle_sockets(server, sockets)
            time.sleep(1.0)
            after = _snapshot(process, Path(tmp) / "after")
            fanout._release(held)
        finally:
            server.stop()
    return before, after


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int, frames: int, top: int) -> str:
    """The largest differences per socket, one line each, and their total."""
    group = "traceback" if frames > 1 else "lineno"
    differences = after.compare_to(before, group)
    total = sum(difference.size_diff for difference in differences)
    lines = [f"{total / sockets:8.0f} B a socket in all ({sockets} idle sockets, tracemalloc)"]
    for difference in differences[:top]:
        where = " <- ".join(str(frame) for frame in difference.traceback)
        lines.append(f"{difference.size_diff / sockets:8.0f} B {difference.count_diff / sockets:6.2f} blocks  {where}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=1, help="frames of each allocation's traceback to group by")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    before, after = measure(args.sockets, args.frames)
    print(report(before, after, args.sockets, args.frames, args.top))


if __name__ == "__main__":
    main()
