"""One configuration of a sweep (a Hydra multirun job), as the cluster launchers send it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Configuration:
    """One job of the sweep: its number, its overrides, its job folder, its tier ("" any)."""

    num: int
    overrides: tuple[str, ...]
    folder: Path
    tier: str

    def shown(self) -> str:
        return f"#{self.num} ({' '.join(self.overrides)})"
