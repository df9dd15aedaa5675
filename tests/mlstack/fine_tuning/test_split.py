"""The split by issue hash: disjoint by construction, near the asked share, and stable as data grows."""

from __future__ import annotations

from mlstack.fine_tuning import split
from tests.mlstack.fine_tuning.conftest import pair


def test_sides_are_disjoint_and_cover_every_pair() -> None:
    found = [pair(n) for n in range(400)]
    sides = split.split(found, 0.2)
    train, validation = ({p.key for p in sides[s]} for s in ("train", "validation"))
    assert not train & validation and train | validation == {p.key for p in found}
    assert 0.14 < len(validation) / len(found) < 0.26


def test_adding_data_never_moves_an_existing_pair() -> None:
    before = split.split([pair(n) for n in range(200)], 0.2)
    after = split.split([pair(n) for n in range(1000)], 0.2)
    for side in ("train", "validation"):
        old = {p.key for p in before[side]}
        assert old <= {p.key for p in after[side]}


def test_the_side_depends_on_the_key_alone() -> None:
    assert split.side("acme/app#7", 0.2) == split.side("acme/app#7", 0.2)
    assert {split.side(f"acme/app#{n}", 0.0) for n in range(50)} == {"train"}
