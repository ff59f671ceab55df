"""Stream and consumer-group names, in one place for every producer and consumer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Streams:
    prefix: str

    @property
    def captures(self) -> str:
        """Exchanges captured by the tap: request + primary side."""
        return f"{self.prefix}:captures"

    @property
    def pairs(self) -> str:
        """Exchanges with the candidate side added by dispatch."""
        return f"{self.prefix}:pairs"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def dispatch_group(self) -> str:
        return "dispatch"

    @property
    def compare_group(self) -> str:
        return "compare"
