"""Fine-tuning's building blocks: GitHub Q&A pairs, a stable split, chat JSONL in OpenAI's
format and its validator, the human review's decisions, and OpenAI fine-tuning jobs.

No Prefect here: `flows/fine_tuning/` composes these, and the tests call them directly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from mlstack.errors import InputError, MlstackError


class FinetuneError(MlstackError):
    """A fine-tuning step that cannot go on; the message says what to do."""


class DatasetError(FinetuneError, InputError):
    """Examples that break a rule: each finding names the file, the line and the rule."""


# GitHub issues with comments, in the REST API's shape, about this project: the offline default.
SAMPLE_DUMP = Path(__file__).parent / "samples" / "github.json"


def source_location(spec: str | None) -> str:
    """`github:OWNER/REPO` or `github:DUMP.json` (or bare) -> the location; empty -> the sample."""
    if not spec:
        return str(SAMPLE_DUMP)
    kind, sep, location = spec.partition(":")
    if sep and kind == "github":
        spec = location
    elif sep and kind not in ("", "github") and not Path(spec).exists():
        raise InputError(f"--source {spec!r}: fine-tuning reads github:OWNER/REPO or github:DUMP.json")
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_file():
            raise InputError(f"--source {spec!r}: a GitHub dump is one JSON file")
        return str(path.resolve())
    if spec.count("/") != 1:
        raise InputError(f"--source {spec!r}: no such file, and not OWNER/REPO")
    return spec


@dataclass(frozen=True)
class Layout:
    """Where one source's fine-tuning data lives under home/finetune."""

    root: Path
    source: str

    @property
    def slug(self) -> str:
        readable = Path(self.source).stem if Path(self.source).suffix else self.source
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", readable)
        return f"{name.strip('-')[:40]}-{hashlib.sha256(self.source.encode()).hexdigest()[:8]}"

    @property
    def partitions(self) -> Path:
        return self.root / "partitions" / self.slug

    @property
    def datasets(self) -> Path:
        return self.root / "datasets" / self.slug

    @property
    def reviews(self) -> Path:
        return self.root / "reviews" / f"{self.slug}.json"

    def run(self, name: str) -> Path:
        return self.root / "runs" / name
