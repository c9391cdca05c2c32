"""MQTT topic templates: `plant/{machine}/{metric}` subscribes as `plant/+/+` and names what each level held."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SINGLE = "+"
_MULTI = "#"


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A subscription filter whose single-level wildcards may carry names."""

    text: str
    # Per level: a literal, "+", "#", or a placeholder name (stored as "{name}").
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> TopicTemplate:
        """Check the template; a ValueError says what is wrong in words a config author understands."""
        if not text:
            raise ValueError("topic must not be empty")
        levels = tuple(text.split("/"))
        names: set[str] = set()
        for position, level in enumerate(levels):
            if level == _MULTI:
                if position != len(levels) - 1:
                    raise ValueError(f"{text!r}: '#' is only allowed as the last level")
                continue
            if level == _SINGLE:
                continue
            match = _PLACEHOLDER.match(level)
            if match:
                name = match.group(1)
                if name in names:
                    raise ValueError(f"{text!r}: placeholder {{{name}}} appears twice")
                names.add(name)
                continue
            if any(char in level for char in "+#{}"):
                raise ValueError(
                    f"{text!r}: level {level!r} mixes text with a wildcard; "
                    "a placeholder such as {machine} or a wildcard + / # must be a whole level"
                )
        return cls(text, levels)

    @property
    def names(self) -> frozenset[str]:
        """The placeholder names, usable in machine/metric/unit templates."""
        return frozenset(level[1:-1] for level in self.levels if level.startswith("{"))

    @property
    def subscription_filter(self) -> str:
        """What to subscribe to at the broker."""
        return "/".join(_SINGLE if level.startswith("{") else level for level in self.levels)

    def match(self, topic: str) -> dict[str, str] | None:
        """The placeholder values of a concrete topic, or None when the topic does not match."""
        parts = topic.split("/")
        captured: dict[str, str] = {}
        for position, level in enumerate(self.levels):
            if level == _MULTI:
                return captured
            if position >= len(parts):
                return None
            part = parts[position]
            if level == _SINGLE:
                continue
            if level.startswith("{"):
                if not part:
                    return None
                captured[level[1:-1]] = part
            elif level != part:
                return None
        return captured if len(parts) == len(self.levels) else None


def template_fields(template: str) -> set[str]:
    """The `{names}` a mapping template such as `{machine}` or `line-{line}` uses; ValueError if malformed."""
    fields: set[str] = set()
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"{template!r}: placeholders are plain names such as {{machine}}")
        fields.add(field)
    return fields
