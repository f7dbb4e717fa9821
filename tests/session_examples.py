"""The session contract's example resources (tests/fixtures/session-examples), as fresh dicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "session-examples"


def example(name: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of one example file, with top-level fields replaced by `changes`."""
    return {**json.loads((EXAMPLES / name).read_text()), **changes}
