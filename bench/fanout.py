"""Fan-out, memory, slow clients and latency: our server side by side with baseline B, in separate processes.

Three processes per case: the server under test (ours: `bench.serve_ours`, exactly as `haltless serve` runs
it; or B: `bench.baseline`, only the `websockets` library), the load generator (`bench.loadgen`: sockets and
the poster), and this orchestrator, which samples the server's CPU and RSS from /proc. Server and load
generator are pinned to different cores where the OS allows it.

Both servers are fed the same way users feed ours: `POST` batches of readings with the same JSON body
(`/api/v1/sensor-data` for ours; a bare HTTP listener for B). Saturation is closed-loop: each tenant's poster
keeps at most WINDOW batches posted but not yet received by all of that tenant's healthy sockets, so the
rate measured is what the server really delivers, not what piles up in buffers.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.ports import free_port
from haltless.core import tokens
from haltless.core.credentials import hash_password
from haltless.core.models import Role
from haltless.store import accounts
from haltless.store.database import create_engine, migrate

WS_PATH = "/api/v1/ws/dashboard"
POST_PATH = "/api/v1/sensor-data"
# Readings per POST in the fan-out cases: an edge agent's typical batch, small enough that a batch to 1,000
# sockets takes well under a second, so the closed loop keeps every process busy.
BATCH = 100
MACHINES_PER_TENANT = 10
METRICS = (("temperature", "celsius", 70.0), ("vibration", "mm/s", 4.0), ("current", "A", 12.0))
WINDOW = 4
WARMUP = 2.0
DURATION = 6.0
M3_DURATION = 12.0
# M3 alternates runs without and with stalled sockets this many times: one pair moved ±10% with the
# machine's load, which is more than the effect measured.
M3_PAIRS = 2
SERVER_CPU = 0
CLIENT_CPU = 1
# M1's shapes: (label, tenants, sockets per tenant).
M1_LAYOUTS = (("1 × 1,000", 1, 1000), ("50 × 20", 50, 20))
M2_SOCKETS = 5000


def cpu_wait_seconds(pid: int) -> float:
    """Seconds the process spent runnable but waiting for a CPU (other work on the machine), from schedstat."""
    try:
        with open(f"/proc/{pid}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def pin(pid: int, cpu: int) -> bool:
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
        os.sched_setaffinity(pid, {cpu})
        return True
    except OSError:
        return False


@dataclass
class Server:
    """A server under test in its own process."""

    name: str
    process: subprocess.Popen[str]
    ws_port: int
    http_port: int
    batch: int = BATCH
    groups: list[dict[str, Any]] = field(default_factory=list)

    def stats(self) -> tuple[float, int]:
        return proc_stats(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                try:
                    self.process.stdin.write("stop\n")
                    self.process.stdin.flush()
                except BrokenPipeError:
                    pass
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def reading_body(machine_ids: list[str], batch: int) -> str:
    """`batch` readings spread over the machines and metrics, all below the alert thresholds."""
    readings = []
    for i in range(batch):
        metric, unit, base = METRICS[i % len(METRICS)]
        readings.append(
            {
                "machine_id": machine_ids[i % len(machine_ids)],
                "metric_name": metric,
                "value": base + (i % 7) * 0.1,
                "unit": unit,
            }
        )
    return orjson.dumps({"readings": readings}).decode()


async def _create_tenants(database_url: str, secret: str, count: int) -> list[tuple[str, str]]:
    """Tenants and admins written straight to a migrated database; returns (tenant_id, access token)."""
    engine = create_engine(database_url)
    await migrate(engine)
    password_hash = hash_password(secrets.token_hex(8))  # one hash for all: hashing is slow on purpose
    made = []
    async with engine.begin() as conn:
        for i in range(count):
            tenant_id, user_id = await accounts.create_tenant(
                conn, name=f"bench {i}", email=f"admin{i}@bench.local", password_hash=password_hash, now=0
            )
            made.append((tenant_id, access_token(secret, tenant_id, user_id)))
    await engine.dispose()
    return made


def access_token(secret: str, tenant_id: str, user_id: str) -> str:
    """An admin's access token for an hour."""
    token, _ = tokens.issue(
        secret,
        token_type="access",
        subject=user_id,
        tenant_id=tenant_id,
        now=int(time.time()),
        ttl=3600,
        role=Role.ADMIN,
    )
    return token


def sqlite_url(data_dir: Path) -> str:
    """The URL of the SQLite file our server uses in `data_dir` (its default)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{(data_dir / 'haltless.db').resolve()}"


def launch_ours(
    data_dir: Path, secret: str, *, database_url: str | None = None, batch: int = BATCH, deadline: float = 60.0
) -> Server:
    """Start our server on an existing database and wait until /api/v1/health answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve_ours"], stdin=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None
    # HALTLESS_BENCH_WS=websockets-sansio measures the ASGI-send path (the "before" column of docs/benchmarks.md).
    ws = os.environ.get("HALTLESS_BENCH_WS")
    job = {"data_dir": str(data_dir), "jwt_secret": secret, "port": port, "ws": ws, "database_url": database_url}
    process.stdin.write(json.dumps(job) + "\n")
    process.stdin.flush()
    pin(process.pid, SERVER_CPU)
    server = Server("ours", process, port, port, batch=batch)
    try:
        wait_healthy(server, deadline)
    except BaseException:
        server.stop()
        raise
    return server


def wait_healthy(server: Server, deadline: float) -> None:
    """Poll /api/v1/health until it answers 200 (or the process dies, or the deadline passes)."""
    give_up = time.perf_counter() + deadline
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=5) as http:
        while time.perf_counter() < give_up:
            if server.process.poll() is not None:
                raise RuntimeError(f"our server exited with {server.process.returncode} while starting")
            try:
                if http.get("/api/v1/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"our server did not answer /api/v1/health within {deadline:.0f} s")


def start_ours(data_dir: Path, tenants: int, batch: int = BATCH, database_url: str | None = None) -> Server:
    """Our server with `tenants` tenants, each with machines and three alert rules that stay quiet."""
    secret = secrets.token_hex(32)
    made = asyncio.run(_create_tenants(database_url or sqlite_url(data_dir), secret, tenants))
    server = launch_ours(data_dir, secret, database_url=database_url, batch=batch)
    try:
        _populate(server, made)
    except BaseException:
        server.stop()
        raise
    return server


def _populate(server: Server, made: list[tuple[str, str]]) -> None:
    """Give each tenant machines and rules through the API, as users would."""
    batch = server.batch
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
        for _tenant_id, token in made:
            auth = {"Authorization": f"Bearer {token}"}
            machine_ids = []
            for m in range(MACHINES_PER_TENANT):
                created = http.post("/api/v1/machines", json={"name": f"Press {m}"}, headers=auth)
                created.raise_for_status()
                machine_ids.append(created.json()["id"])
            for metric, _unit, base in METRICS:
                rule = {"name": f"{metric} high", "metric_name": metric, "condition": ">", "threshold": base * 10}
                http.post("/api/v1/alert-rules", json=rule, headers=auth).raise_for_status()
            server.groups.append({"token": token, "post_token": token, "body": reading_body(machine_ids, batch)})


def start_baseline(tenants: int, batch: int = BATCH) -> Server:
    """Baseline B with `tenants` tenants, fed the same bodies as ours."""
    ws_port, http_port = free_port(), free_port()
    groups = []
    table = {}
    for i in range(tenants):
        token = f"token-{i}-{uuid.uuid4().hex}"
        table[token] = f"tenant-{i}"
        machine_ids = [str(uuid.uuid4()) for _ in range(MACHINES_PER_TENANT)]
        groups.append({"token": token, "post_token": token, "body": reading_body(machine_ids, batch)})
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(json.dumps({"ws_port": ws_port, "http_port": http_port, "tokens": table}) + "\n")
    process.stdin.flush()
    pin(process.pid, SERVER_CPU)
    if "listening" not in process.stdout.readline():
        raise RuntimeError("baseline did not start")
    server = Server("B", process, ws_port, http_port)
    server.groups = groups
    return server


@contextmanager
def sampling_rss(server: Server) -> Iterator[list[int]]:
    """Sample the server's RSS every 50 ms in the background; the list holds the samples."""
    samples: list[int] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                samples.append(server.stats()[1])
            except OSError:
                return
            done.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def drive(
    server: Server,
    sockets_per_group: int,
    *,
    mode: str = "saturate",
    rate: float = 0.0,
    stall_every: int = 0,
    duration: float = DURATION,
) -> dict[str, Any]:
    """One load-generator run against `server`; returns its result plus the server's CPU and peak RSS."""
    job = {
        "mode": mode,
        "rate": rate,
        "ws_port": server.ws_port,
        "http_port": server.http_port,
        "ws_path": WS_PATH,
        "post_path": POST_PATH,
        "window": WINDOW,
        "warmup": WARMUP,
        "duration": duration if mode != "rate" else 2 * duration,
        "stall_every": stall_every,
        "cpu": CLIENT_CPU,
        "groups": [
            {**g, "sockets": sockets_per_group, "batch": len(orjson.loads(g["body"])["readings"])}
            for g in server.groups
        ],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(json.dumps(job) + "\n")
    process.stdin.flush()
    pin(process.pid, CLIENT_CPU)
    result: dict[str, Any] = {}
    cpu0 = t0 = wait0 = 0.0
    with sampling_rss(server) as rss:
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "mark" and event["at"] == "start":
                cpu0, t0 = server.stats()[0], time.perf_counter()
                wait0 = cpu_wait_seconds(server.process.pid)
            elif event["event"] == "mark" and event["at"] == "end":
                elapsed = time.perf_counter() - t0
                result["server_cpu"] = (server.stats()[0] - cpu0) / elapsed
                result["server_wait"] = (cpu_wait_seconds(server.process.pid) - wait0) / elapsed
                if server.name == "ours":
                    # A stalled client never reads, so it cannot see its own 4008; ask the server who is left.
                    health = httpx.get(f"http://127.0.0.1:{server.http_port}/api/v1/health", timeout=10)
                    result["server_sockets"] = health.json()["websockets"]
                process.stdin.write("measured\n")
                process.stdin.flush()
            elif event["event"] == "result":
                result.update(event)
    if process.wait() != 0:
        raise RuntimeError(f"load generator failed against {server.name}")
    result["peak_rss"] = max(rss) if rss else 0
    return result


@dataclass(frozen=True)
class IdleMemory:
    """What M2 measured on one server."""

    per_socket: float  # RSS growth per authenticated idle socket, bytes
    before: int  # RSS before the sockets, bytes
    client_cpu: float  # the load generator's CPU share while it opened them
    connect_s: float  # how long opening them took


def idle_memory(server: Server, sockets: int) -> IdleMemory:
    """RSS growth of the server per authenticated idle socket."""
    warm, _ = _idle_sockets(server, 200)
    _release(warm)
    time.sleep(1.0)
    before = server.stats()[1]
    held, connected = _idle_sockets(server, sockets)
    time.sleep(1.0)
    after = server.stats()[1]
    _release(held)
    seconds = connected["seconds"]
    return IdleMemory((after - before) / sockets, before, connected["cpu"] / max(seconds, 1e-9), seconds)


def _idle_sockets(server: Server, count: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    job = {
        "mode": "idle",
        "ws_port": server.ws_port,
        "http_port": server.http_port,
        "ws_path": WS_PATH,
        "post_path": POST_PATH,
        "cpu": CLIENT_CPU,
        "connect_concurrency": 100,
        "groups": [{**server.groups[0], "sockets": count, "batch": BATCH}],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(json.dumps(job) + "\n")
    process.stdin.flush()
    pin(process.pid, CLIENT_CPU)
    line = process.stdout.readline()
    if "connected" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"idle sockets failed against {server.name}")
    connected: dict[str, Any] = json.loads(line)
    return process, connected


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.flush()
    process.wait(30)


def fmt_rate(value: float) -> str:
    return f"{value / 1000:,.0f}k"


def verdict(ratio: float, target: float, higher_is_better: bool) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    return "✅" if ok else "❌"


def shares(results: list[dict[str, Any]], key: str) -> str:
    """`53% / 99% / 71%`: one share per server, in the table's column order."""
    return " / ".join(f"{result[key]:.0%}" for result in results)


def ratio_cell(mine: float, theirs: float | None) -> str:
    return f"{mine / theirs:.2f}" if theirs else "—"


def target_cell(mine: float, theirs: float | None, target: float, higher_is_better: bool) -> str:
    if not theirs:
        return "—"
    sign = "≥" if higher_is_better else "≤"
    return f"{sign} {target:g} {verdict(mine / theirs, target, higher_is_better)}"


def run() -> str:
    """M1 (ours, B, Bun), M2 (ours, B, Bun), M3 and M5; returns the markdown table."""
    from bench import bun_anchor  # it builds on this module's servers

    load_before = os.getloadavg()
    rows: list[str] = []
    notes: list[str] = []
    bun = bun_anchor.ensure_bun()
    bun_note = f"Bun {bun_anchor.pinned_version()}" if isinstance(bun, Path) else f"Bun: skipped: {bun}"
    with tempfile.TemporaryDirectory(prefix="haltless-bench-fanout-") as tmp:
        # M1 and M3 on one server of each kind; M3 compares two runs of its own, back to back.
        servers = [start_ours(Path(tmp) / "m1", tenants=50)]
        try:
            servers.append(start_baseline(tenants=50))
            if isinstance(bun, Path):
                servers.append(bun_anchor.start_bun(bun, tenants=50))
            results: dict[tuple[str, str], dict[str, Any]] = {}
            for layout, groups, per in M1_LAYOUTS:
                for server in servers:
                    whole = server.groups
                    server.groups = whole[:groups]
                    try:
                        results[(server.name, layout)] = drive(server, per)
                    finally:
                        server.groups = whole
            for server in servers[1:]:
                server.stop()
            # M3 runs longer: a stalled socket first fills the kernel's send buffer (tcp_wmem, up to 4 MiB here)
            # before its own 1 MiB budget, so the 4008 cut-offs fall inside the measured window.
            ours = servers[0]
            ours.groups = ours.groups[:1]
            m3_pairs = [
                (drive(ours, 1000, duration=M3_DURATION), drive(ours, 1000, stall_every=10, duration=M3_DURATION))
                for _ in range(M3_PAIRS)
            ]
        finally:
            for server in servers:
                server.stop()
        for layout, _groups, _per in M1_LAYOUTS:
            mine, theirs = results[("ours", layout)], results[("B", layout)]
            anchor = results.get(("Bun", layout))
            rate, rate_b = mine["delivered_per_s"], theirs["delivered_per_s"]
            rate_bun = anchor["delivered_per_s"] if anchor else None
            measured = [mine, theirs, *([anchor] if anchor else [])]
            bun_cell = fmt_rate(rate_bun) if rate_bun else "—"
            rows.append(
                f"| M1 fan-out {layout} (tenants × sockets), delivered msg/s | {fmt_rate(rate)} | {fmt_rate(rate_b)} "
                f"| {bun_cell} | {ratio_cell(rate, rate_b)} | {ratio_cell(rate, rate_bun)} "
                f"| B {target_cell(rate, rate_b, 1.0, True)}; Bun {target_cell(rate, rate_bun, 1.0, True)} "
                f"| server CPU {shares(measured, 'server_cpu')} (waited for a CPU {shares(measured, 'server_wait')}), "
                f"client CPU {shares(measured, 'client_cpu')} |"
            )
        none_rate = sum(plain["per_socket_per_s"] for plain, _ in m3_pairs) / M3_PAIRS
        stalled_rate = sum(stalled["per_socket_per_s"] for _, stalled in m3_pairs) / M3_PAIRS
        healthy = stalled_rate / none_rate
        per_pair = ", ".join(f"{s['per_socket_per_s'] / p['per_socket_per_s']:.2f}" for p, s in m3_pairs)
        cut = sum(1000 - stalled["server_sockets"] for _, stalled in m3_pairs)
        stalled_sockets = sum(stalled["stalled"] for _, stalled in m3_pairs)
        lost = sum(stalled["healthy_closed"] for _, stalled in m3_pairs)
        peak_with = max(stalled["peak_rss"] for _, stalled in m3_pairs)
        peak_without = max(plain["peak_rss"] for plain, _ in m3_pairs)
        clients = "/".join(f"{p['client_cpu']:.0%}/{s['client_cpu']:.0%}" for p, s in m3_pairs)
        rows.append(
            f"| M3 slow clients: msg/s per healthy socket, 10% stalled (ours) vs none (ours) "
            f"| {stalled_rate:,.0f} | {none_rate:,.0f} | | {healthy:.2f} | | ≥ 0.95 {verdict(healthy, 0.95, True)} "
            f"| mean of {M3_PAIRS} alternating pairs ({per_pair}); {cut}/{stalled_sockets} stalled cut off (4008), "
            f"{lost} healthy lost; peak RSS {peak_with / 2**20:.0f} MiB (without: {peak_without / 2**20:.0f} MiB); "
            f"{M3_DURATION:.0f} s measured each; client CPU {clients} |"
        )

        # M5 at half of B's saturation rate (1 × 1,000), batches sized for 10 requests a second.
        per_socket = results[("B", "1 × 1,000")]["per_socket_per_s"] / 2
        batch = max(1, round(per_socket / 10))
        rate = per_socket / batch
        ours = start_ours(Path(tmp) / "m5", tenants=1, batch=batch)
        try:
            relay = start_baseline(tenants=1, batch=batch)
            try:
                lat_ours = drive(ours, 1000, mode="rate", rate=rate)
                lat_relay = drive(relay, 1000, mode="rate", rate=rate)
            finally:
                relay.stop()
        finally:
            ours.stop()
        for q in ("p50", "p99"):
            ratio = lat_ours[f"{q}_ms"] / lat_relay[f"{q}_ms"]
            target = "≤ 1.5 " + verdict(ratio, 1.5, False) if q == "p99" else "(report)"
            rows.append(
                f"| M5 latency {q}: POST sent → last of 1,000 sockets, ms | {lat_ours[f'{q}_ms']:.1f} "
                f"| {lat_relay[f'{q}_ms']:.1f} | | {ratio:.2f} | | {target} "
                f"| {rate:.0f} req/s × {batch} readings; {lat_ours['samples']} / {lat_relay['samples']} batches; "
                f"client CPU {lat_ours['client_cpu']:.0%} / {lat_relay['client_cpu']:.0%} |"
            )

        # M2 on fresh servers, so memory freed by earlier cases cannot hide the growth.
        idle: dict[str, IdleMemory] = {}
        starters: list[tuple[str, Callable[[], Server]]] = [
            ("ours", lambda: start_ours(Path(tmp) / "m2", tenants=1)),
            ("B", lambda: start_baseline(tenants=1)),
        ]
        if isinstance(bun, Path):
            starters.append(("Bun", lambda: bun_anchor.start_bun(bun, tenants=1)))
        for name, start in starters:
            server = start()
            try:
                idle[name] = idle_memory(server, M2_SOCKETS)
            finally:
                server.stop()
        per_ours, per_b = idle["ours"].per_socket, idle["B"].per_socket
        per_bun = idle["Bun"].per_socket if "Bun" in idle else None
        measured_idle = list(idle.values())
        rows.append(
            f"| M2 memory: RSS growth per authenticated idle socket at {M2_SOCKETS:,}, KiB | {per_ours / 1024:.1f} "
            f"| {per_b / 1024:.1f} | {f'{per_bun / 1024:.1f}' if per_bun else '—'} "
            f"| {ratio_cell(per_ours, per_b)} | {ratio_cell(per_ours, per_bun)} "
            f"| B {target_cell(per_ours, per_b, 1.3, False)}; Bun {target_cell(per_ours, per_bun, 2.0, False)} "
            f"| RSS before {' / '.join(f'{m.before / 2**20:.0f}' for m in measured_idle)} MiB; "
            f"client CPU while connecting {' / '.join(f'{m.client_cpu:.0%}' for m in measured_idle)} "
            f"({' / '.join(f'{m.connect_s:.1f}' for m in measured_idle)} s) |"
        )
    load_after = os.getloadavg()
    notes.append(
        f"Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs; "
        f"server pinned to CPU {SERVER_CPU}, load generator to CPU {CLIENT_CPU}. {WARMUP:.0f} s warm-up, "
        f"{DURATION:.0f} s measured per saturation run; {BATCH}-reading POST batches, window {WINDOW}. {bun_note}."
    )
    header = [
        "| case | ours | B | Bun | ours ÷ B | ours ÷ Bun | target | notes (ours / B / Bun) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    return "\n".join([*notes, "", *header, *rows])


if __name__ == "__main__":
    print(run())
