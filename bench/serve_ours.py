"""Our server for the bench, in its own process, configured exactly as `haltless serve` (server/runner.py).

`python -m bench.serve_ours` reads one JSON job on stdin (data dir, JWT secret, port, and a database URL when
the database is not the data dir's SQLite file, e.g. PostgreSQL). The only change from
production: uvicorn's keepalive pings are off, because the load generator does not answer them (it counts
frames without parsing them) and the baselines have theirs off too; a ping every 20 s costs nothing measurable.
With `"tracemalloc": <frames>` in the job it traces allocations and dumps a snapshot for each "snapshot <path>"
line on stdin (bench.socket_memory).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import threading
import tracemalloc
from pathlib import Path

import uvicorn

from haltless.server.runner import uvicorn_config
from haltless.settings import Settings


def main() -> None:
    job = json.loads(sys.stdin.readline())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = Settings(
        data_dir=Path(job["data_dir"]),
        database_url=job.get("database_url"),
        jwt_secret=job["jwt_secret"],
        ws_max_pending=job.get("max_pending", 256),
        access_token_ttl=3600,
    )
    config = uvicorn_config(settings, host="127.0.0.1", port=job["port"], log_level="warning")
    config.ws_ping_interval = None
    if job.get("ws"):
        config.ws = job["ws"]
    config.backlog = 4096
    if job.get("tracemalloc"):
        # bench.socket_memory: trace allocations from here on; "snapshot <path>" on stdin dumps them.
        tracemalloc.start(int(job["tracemalloc"]))
        threading.Thread(target=_snapshots, daemon=True).start()
    uvicorn.Server(config).run()


def _snapshots() -> None:
    for line in sys.stdin:
        command, _, path = line.strip().partition(" ")
        if command == "snapshot":
            gc.collect()  # what is live, not garbage a later collection would free
            tracemalloc.take_snapshot().dump(path)
            print("snapshot", flush=True)


if __name__ == "__main__":
    main()
