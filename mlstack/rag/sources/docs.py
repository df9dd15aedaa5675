"""Docs: Markdown, reStructuredText and text files under a folder (or one file).

A file's id is its absolute path: unique across sources (two folders each with a README.md are
two documents) and stable while the folder stays where it is. A folder that moved is a new
source; the old one's documents go with `rag drop --source` or `rag refresh --prune`. Its `path`,
shown with citations, is relative to the folder. Its title is its first heading, else its name.
Hidden folders and virtual environments are skipped, and so is a file over the size limit.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from mlstack.rag.sources import Document, Skipped, SourceRead, too_large

FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text"}
SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "venv"}
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_RST_HEADING = re.compile(r"^(?:([=\-~^\"'`#*+]{3,})\n)?(\S.*?)\s*\n([=\-~^\"'`#*+]{3,})\s*$", re.MULTILINE)


def title_of(text: str, fmt: str, path: Path) -> str:
    if fmt == "markdown" and (match := _MD_HEADING.search(text)):
        return match.group(1).strip()
    if fmt == "rst" and (match := _RST_HEADING.search(text)):
        return match.group(2).strip()
    return path.stem.replace("_", " ").replace("-", " ")


def files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in parts[:-1]) or parts[-1].startswith("."):
            continue
        if path.is_file() and path.suffix.lower() in FORMATS:
            found.append(path)
    return found


def _refused(path: Path, relative: str, inside: Path) -> str | None:
    """Why a file under the folder is not read, or None."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:  # its bytes were not UTF-8: no id or title can be made of them
        return "its name is not UTF-8: rename it"
    if path.is_symlink() and not path.resolve().is_relative_to(inside):
        return "a link to a file outside the folder: only what the folder holds is read"
    return None


def _shown(path: Path) -> str:
    """The path as text, with the bytes of a name that is not UTF-8 escaped."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read(root: Path, source: str, max_bytes: int | None = None) -> SourceRead:
    result = SourceRead(source)
    if not root.exists():
        result.skipped.append(Skipped(str(root), "no such file or folder"))
        result.complete = False  # a missing folder must not delete what was read from it before
        return result
    base = root.parent if root.is_file() else root
    inside = base.resolve()
    for path in files_under(root):
        relative = path.relative_to(base).as_posix()
        fmt = FORMATS[path.suffix.lower()]
        if (reason := _refused(path, relative, inside)) is not None:
            result.skipped.append(Skipped(_shown(path), reason))
            continue
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            result.skipped.append(Skipped(str(path), too_large(size, max_bytes)))
            continue  # not even read: a 50 MB file held the refresh for hours
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            result.skipped.append(Skipped(str(path), f"not UTF-8 text (byte {exc.start})"))
            continue
        except OSError as exc:
            result.skipped.append(Skipped(str(path), f"unreadable: {exc.strerror}"))
            continue
        if not text.strip():
            result.skipped.append(Skipped(str(path), "empty"))
            continue
        if "\x00" in text:  # Postgres text cannot hold it, and it failed the whole batch
            result.skipped.append(
                Skipped(str(path), f"holds a NUL byte (at character {text.index(chr(0))}): binary?")
            )
            continue
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        result.documents.append(
            Document(
                id=f"docs:{(inside / relative).as_posix()}",
                kind="docs",
                title=title_of(text, fmt, path),
                units=(text,),
                path=relative,
                created_at=modified,
                updated_at=modified,
                metadata={"format": fmt},
                format=fmt,  # type: ignore[arg-type]
            )
        )
    return result
