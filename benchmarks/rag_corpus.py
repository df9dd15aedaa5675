"""A real documentation corpus already on the machine: the docstrings of an installed package's
public API, one Markdown file per function or method, titled with its qualified name.

    python benchmarks/rag_corpus.py pandas.DataFrame OUT_DIR
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path


def members(target: str) -> list[tuple[str, str]]:
    """(qualified name, docstring) of the public callables of a module or class."""
    module_name, _, attribute = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    prefix = target.replace(":", ".")
    found = []
    for name in sorted(dir(obj)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that needs an instance
            continue
        doc = inspect.getdoc(value)
        if callable(value) and doc and len(doc) > 80 and not inspect.isclass(value):
            found.append((f"{prefix}.{name}", doc))
    return found


def write(target: str, folder: Path, limit: int | None = None) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    entries = members(target)[:limit]
    for qualified, doc in entries:
        (folder / f"{qualified}.md").write_text(f"# {qualified}\n\n{doc}\n", encoding="utf-8")
    return len(entries)


if __name__ == "__main__":
    print(write(sys.argv[1], Path(sys.argv[2])), "documents")
