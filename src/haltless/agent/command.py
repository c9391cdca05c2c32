"""`haltless agent`: load the config, run the agent, turn failures into one clear line and an exit code.

Exit codes: 0 done (with `--once`: everything captured was delivered), 1 something could not be sent
or a fatal error stopped the agent (bad API key, buffer in use, a password a device refused), 2 the config
file is invalid (also when a device says so: an OPC UA node the server does not have).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from haltless.agent.buffer import BufferUnusable
from haltless.agent.config import AgentConfig, ConfigError, load_config
from haltless.agent.runner import Agent, summary_json
from haltless.agent.sources import SourceConfigError, SourceError
from haltless.agent.uplink import UplinkRefused

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_BAD_CONFIG = 2
QUIET_LIBRARIES = ("asyncua", "pymodbus")


def run_command(config_path: Path, *, once: bool, environ: Mapping[str, str] | None = None) -> int:
    """Run the agent as the CLI does; returns the exit code."""
    _configure_logging()
    try:
        config = load_config(config_path, os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        return asyncio.run(_main(config, once=once))
    except SourceConfigError as exc:
        print(f"error: {config_path}: invalid configuration\n{_indented(str(exc))}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (BufferUnusable, SourceError, UplinkRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    except KeyboardInterrupt:
        return EXIT_OK


async def _main(config: AgentConfig, *, once: bool) -> int:
    agent = Agent(config, once=once)
    if once:
        summary = await agent.run_once()
        print(json.dumps(summary_json(summary)), flush=True)
        return EXIT_OK if summary.complete else EXIT_NOT_DELIVERED
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:
        # A service manager stops us with SIGTERM: leave like Ctrl-C, with the buffer closed cleanly.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run_forever()
    return EXIT_OK


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s agent: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger = logging.getLogger("haltless.agent")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # The sources report a lost device in one line and reconnect; the libraries would add a traceback per
    # disconnect and per retry (and pymodbus a hex dump of recent frames) to the journal.
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(logging.CRITICAL)
