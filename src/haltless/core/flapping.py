"""Flap detection, pure: a (rule, machine) whose alerts fire and clear too often gets one `flapping` alert.

Semantics (docs/alerts.md, "Flapping"), in measurement time like the rest of the rule engine:
- A rule with `flap_threshold = K` remembers when its last K + 1 alerts on a machine opened.
- When an alert opens and K alerts already opened within the `flap_window_seconds` (W) before it, this alert
  opens *flapping*: it fired and cleared more than K times in W.
- A flapping alert does not clear on the next clearing reading. It stays open while the value keeps crossing
  the threshold, and clears on the first clearing reading once the value has not breached for W (it was calm
  a whole window). The rule then watches as usual, its memory of recent alerts intact.
- `flap_threshold = None` turns the detector off: `decide` passes the rule engine's decision through.

`decide` runs after `core.rules.evaluate` on one reading: the state before and after it, and the transition it
chose, in; the state and transition to keep, and whether the alert that opens is flapping, out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from haltless.core.rules import AlertCleared, AlertOpened, Rule, RuleState, Transition

MICROS = 1_000_000
# The defaults of new rules (docs/alerts.md): a fourth alert within ten minutes is a flap.
DEFAULT_FLAP_THRESHOLD = 3
DEFAULT_FLAP_WINDOW_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rule engine's transition becomes under flap detection."""

    state: RuleState
    transition: Transition | None
    flapping: bool = False  # the alert `transition` opens is flapping


def decide(
    rule: Rule, before: RuleState, after: RuleState, transition: Transition | None, breaching: bool, ts: int
) -> Decision:
    """Apply flap detection to one evaluated reading (`breaching`: the reading breaches the rule)."""
    if rule.flap_threshold is None:
        if before.flapping or before.flap_fires or before.calm_since is not None:
            # Detection was switched off: forget it; an open flapping alert clears as any other.
            after = replace(after, flap_fires=(), flapping=False, calm_since=None)
        return Decision(after, transition)
    window = int(rule.flap_window_seconds * MICROS)
    if before.flapping and before.open_alert_id is not None:
        if isinstance(transition, AlertCleared):
            calm_since = before.calm_since if before.calm_since is not None else ts
            if ts - calm_since >= window:
                return Decision(replace(after, flap_fires=before.flap_fires), transition)
            # Not calm for a whole window yet: the flapping alert stays open.
            held = replace(before, breach_since=None, calm_since=calm_since)
            return Decision(held, None)
        calm = None if breaching else before.calm_since
        return Decision(replace(after, flapping=True, calm_since=calm, flap_fires=before.flap_fires), None)
    if isinstance(transition, AlertOpened):
        recent = tuple(fire for fire in before.flap_fires if ts - fire < window)
        flapping = len(recent) >= rule.flap_threshold
        fires = (*recent, ts)[-(rule.flap_threshold + 1) :]
        return Decision(replace(after, flap_fires=fires, flapping=flapping, calm_since=None), transition, flapping)
    if after.flap_fires is not before.flap_fires:
        after = replace(after, flap_fires=before.flap_fires, flapping=False, calm_since=None)
    return Decision(after, transition)
