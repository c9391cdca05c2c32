"""`python -m bench [name ...]`: run every registered benchmark (or the named ones) and print their tables."""

from __future__ import annotations

import importlib
import sys
import time

# Each module has `run() -> str` returning a markdown table. Add new benchmarks here.
REGISTRY: dict[str, str] = {
    "history": "bench.history",
}


def main(argv: list[str]) -> int:
    """Run the selected benchmarks in registry order."""
    unknown = [name for name in argv if name not in REGISTRY]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    for name, module_name in REGISTRY.items():
        if argv and name not in argv:
            continue
        started = time.perf_counter()
        table: str = importlib.import_module(module_name).run()
        print(f"## {name} ({time.perf_counter() - started:.0f} s)\n\n{table}\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
