from __future__ import annotations

from haltless.cli import main

main()
