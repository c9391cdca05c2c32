"""`haltless demo`: the degrading machine's forecast alert comes well before its critical alert, and the demo says
by how much."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from haltless.demo.lead_time import LeadTimes, SeenAlert
from tests.conftest import free_port
from tests.test_cli import HALTLESS, _env, _lines_until, _wait_http, stop_later

__all__ = ["stop_later"]


def test_lead_time_pairs_each_critical_alert_with_the_forecast_before_it() -> None:
    tracker = LeadTimes({"forecast"}, {"critical"})
    warn = SeenAlert("a1", "forecast", "m1", "will pass 88 °C in about 20 s", 10_000_000)
    again = SeenAlert("a2", "forecast", "m1", "will pass 88 °C in about 15 s", 12_000_000)
    other = SeenAlert("a3", "critical", "m2", "hot", 20_000_000)  # no forecast on m2: nothing to report
    assert tracker.observe([warn, again, other]) == []
    critical = SeenAlert("a4", "critical", "m1", "Temperature exceeded threshold", 31_000_000)
    [lead] = tracker.observe([warn, again, other, critical])
    assert (lead.machine_id, lead.seconds, lead.forecast_message) == ("m1", 21.0, warn.message)
    assert tracker.observe([warn, again, other, critical]) == []  # each alert is reported once


def test_demo_prints_how_long_before_the_critical_alert_the_forecast_warned(
    tmp_path: Path, stop_later: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [*HALTLESS, "demo", "--port", str(port), "--machines", "3"],
        env={**_env(tmp_path), "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop_later.append(demo)
    _wait_http(f"http://127.0.0.1:{port}/api/v1/health", demo)
    # The first degrading machine starts 70% into its wear cycle: critical within about 40 s.
    lines = _lines_until(demo, lambda seen: "before the critical alert" in " ".join(seen), seconds=120)
    text = " ".join(lines)
    found = re.search(r"Press 01: the forecast warned (\d+) s before the critical alert", text)
    assert found, lines[-10:]
    assert int(found.group(1)) >= 10
    assert "Temperature will pass 88 °C in about" in text
    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0
