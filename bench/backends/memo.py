"""Facts about a model on this host that take seconds to measure and never change while the
model, its settings and the host stay the same, remembered under the cache folder: a worker
started again (a replica, a serverless cold start, the next run) reads them instead of paying
for them inside its start-up."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def remembered(
    cache_dir: str | None,
    kind: str,
    identity: str,
    measure: Callable[[], T],
    read: Callable[[Any], T],
    keep: Callable[[T], bool] = lambda _: True,
) -> tuple[T, bool]:
    """(`measure()`, False) remembered as JSON in `<cache_dir>/<kind>/` under `identity` (what
    was measured, and where), or (what was remembered, as `read` takes it from the JSON, True).
    A file `read` refuses is measured again; a value `keep` refuses is not remembered; no
    `cache_dir`: measured every time."""
    if cache_dir is None:
        return measure(), False
    memo = Path(cache_dir).expanduser() / kind / hashlib.sha256(identity.encode()).hexdigest()
    try:
        return read(json.loads(memo.read_text())), True
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        pass
    value = measure()
    if keep(value):
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, memo)  # workers starting together each write a whole file
    return value, False
