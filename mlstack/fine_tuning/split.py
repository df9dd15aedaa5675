"""Training and validation, split by a hash of the issue's key.

A pair's side depends on its key alone, so the two sets are disjoint by construction, and new
data never moves an existing pair to the other side: there is no shuffle and no count to shift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

from mlstack.fine_tuning.pairs import Pair

Side = Literal["train", "validation"]


def side(key: str, validation_share: float) -> Side:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "validation" if bucket < validation_share else "train"


def split(pairs: Iterable[Pair], validation_share: float) -> dict[Side, list[Pair]]:
    sides: dict[Side, list[Pair]] = {"train": [], "validation": []}
    for pair in sorted(pairs, key=lambda p: p.key):
        sides[side(pair.key, validation_share)].append(pair)
    return sides
