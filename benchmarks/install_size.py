"""What the install weighs, and what each dependency adds: the default install (the classic loop)
against the all-in-one install it replaced (every extra), from the packages in this environment.

A package's share is exclusive: what would leave the environment with it (its own files, and the
packages that only it pulls in). The sizes are the installed files' sizes, read from each
package's RECORD; torch is whatever build is installed (`pip show torch`: `+cpu` is the CPU one).

    .venv/bin/python benchmarks/install_size.py            # the table, then the JSON line
    .venv/bin/python benchmarks/install_size.py --top 40
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable
from importlib.metadata import Distribution, distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

MB = 1e6


def installed() -> dict[str, Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in distributions()}


def size_of(dist: Distribution) -> int:
    total = 0
    for file in dist.files or []:
        with contextlib.suppress(OSError):  # listed in RECORD but never written (a .pyc): nothing
            total += dist.locate_file(file).stat().st_size
    return total


def requirements(dist: Distribution, extras: Iterable[str] = ()) -> list[Requirement]:
    """What a package asks for, with the given extras of its own in force."""
    wanted = []
    for line in dist.requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in (*extras, "")):
            wanted.append(requirement)
    return wanted


def closure(roots: Iterable[Requirement], found: dict[str, Distribution]) -> set[str]:
    """Every installed package the requirements pull in, themselves included."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = [(canonicalize_name(r.name), tuple(sorted(r.extras))) for r in roots]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen or name not in found:
            continue
        seen.add((name, extras))
        stack += [
            (canonicalize_name(r.name), tuple(sorted(r.extras))) for r in requirements(found[name], extras)
        ]
    return {name for name, _ in seen}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--top", type=int, default=25, help="How many dependencies to list, largest first.")
    args = parser.parse_args()

    found = installed()
    sizes = {name: size_of(dist) for name, dist in found.items()}
    project = found["mlstack"]
    core = [r for r in requirements(project) if r.marker is None]
    extras = {e: [r for r in requirements(project, [e]) if r.marker] for e in ("llm", "dask")}

    def weight(names: set[str]) -> float:
        return sum(sizes[n] for n in names) / MB

    default = closure(core, found)
    everything = closure([*core, *(r for rs in extras.values() for r in rs)], found)
    added = {e: weight(closure([*core, *rs], found) - default) for e, rs in extras.items()}
    direct = [*core, *(r for rs in extras.values() for r in rs)]
    rows = []
    for requirement in direct:
        others = closure([r for r in direct if r is not requirement], found)
        own = closure([requirement], found) - others
        extra = next((e for e, rs in extras.items() if requirement in rs), "default")
        largest = sorted(own, key=lambda n: -sizes[n])[:3]
        rows.append((weight(own), requirement.name, extra, ", ".join(largest)))
    rows.sort(reverse=True)
    torch = found.get("torch")
    result = {
        "bench": "install_size",
        "default_mb": round(weight(default)),
        "all_extras_mb": round(weight(everything)),
        "default_over_all": round(weight(default) / weight(everything), 3),
        "llm_adds_mb": round(added["llm"]),
        "dask_adds_mb": round(added["dask"]),
        "torch_build": torch.version if torch else None,
        "packages": len(everything),
    }
    report(
        "What each dependency adds (exclusive MB: what would leave with it)",
        [(name, extra, f"{mb:,.0f}", largest) for mb, name, extra, largest in rows[: args.top]],
        ("dependency", "install", "MB", "largest packages it alone brings"),
        result,
        extra=[
            (
                "The install",
                [
                    ("default (pip install -e .)", f"{result['default_mb']:,} MB"),
                    ("+ llm (make demo)", f"+{result['llm_adds_mb']:,} MB"),
                    ("+ dask", f"+{result['dask_adds_mb']:,} MB"),
                    ("all in one (before the extras)", f"{result['all_extras_mb']:,} MB"),
                    ("default / all in one", f"{result['default_over_all']:.2f}"),
                    ("torch build", str(result["torch_build"])),
                ],
            )
        ],
    )


if __name__ == "__main__":
    main()
