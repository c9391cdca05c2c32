"""`python -m bench [name ...]`: run every registered benchmark but the opt-in ones (or the named ones), print and
record their tables.

Benchmarks under OPT_IN take minutes and measure one feature; they run only when named (`python -m bench agent`,
`make bench-agent`), never as part of `make bench`.

Each table also replaces its own generated section of docs/benchmarks.md (between `<!-- bench:NAME -->`
markers), so running one benchmark leaves the others' last results and the hand-written text in place.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

# Each module has `run() -> str` returning a markdown table. Add new benchmarks here.
REGISTRY: dict[str, str] = {
    "history": "bench.history",
    "fanout": "bench.fanout",
    "ingest": "bench.ingest",
    "growth": "bench.growth",
    "nab": "bench.nab",
    "predictive": "bench.predictive",
    "hostile": "bench.hostile",
    "hostile-bus": "bench.hostile_bus",
    "sweep": "bench.session_sweep",
}
# Run only when named, outside `make bench`'s time budget.
OPT_IN: dict[str, str] = {
    "large": "bench.large",  # 10M readings: about a minute and 2.6 GB of temp disk (`make bench-large`)
    "agent": "bench.agent",  # OPC UA latency and Modbus polling through the edge agent, about 3 minutes
    "planning": "bench.planning",  # the pure planner as a tenant's rules grow, in-process, seconds
    "shared": "bench.shared",  # an ingest batch in shared mode (PostgreSQL) as rules grow, in-process, ~30 s
}

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def record(name: str, section: str) -> None:
    """Replace (or append) the generated section of `name` in docs/benchmarks.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    DOC.write_text(text)


def main(argv: list[str]) -> int:
    """Run the selected benchmarks in registry order."""
    known = REGISTRY | OPT_IN
    unknown = [name for name in argv if name not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    for name, module_name in known.items():
        if (argv and name not in argv) or (not argv and name in OPT_IN):
            continue
        started = time.perf_counter()
        table: str = importlib.import_module(module_name).run()
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
        section = f"### {name} ({time.perf_counter() - started:.0f} s, {stamp})\n\n{table}"
        print(f"{section}\n", flush=True)
        record(name, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
