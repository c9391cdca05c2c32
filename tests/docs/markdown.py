"""The fenced code samples of the Markdown docs, with where they are and whether they can run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every doc whose samples the tests read.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A fence of three or more backticks; it ends at a line of the same backticks (so a ```` block can show one).
_FENCE = re.compile(r"^(`{3,})([^`\s]*)\s*$")
# A comment on the line just above a fence that exempts the sample: `<!-- not-runnable: why -->`.
_NOT_RUNNABLE = re.compile(r"^<!--\s*not-runnable:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Sample:
    """One fenced block: its file, first line (1-based, the fence), language tag and text."""

    path: Path
    line: int
    language: str
    code: str
    not_runnable: str | None  # the documented reason, when the block is marked not runnable

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def samples(path: Path) -> list[Sample]:
    """The fenced code blocks of one Markdown file, in order."""
    found: list[Sample] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != match.group(1):
            body.append(lines[index])
            index += 1
        previous = lines[start - 1] if start > 0 else ""
        marker = _NOT_RUNNABLE.match(previous.strip())
        found.append(
            Sample(path, start + 1, match.group(2), "\n".join(body) + "\n", marker.group(1) if marker else None)
        )
        index += 1
    return found


def sample_containing(path: Path, text: str) -> Sample:
    """The one block of `path` that contains `text`."""
    matching = [sample for sample in samples(path) if text in sample.code]
    assert len(matching) == 1, (path, text, [s.where for s in matching])
    return matching[0]
