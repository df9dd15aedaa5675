"""The pretraining corpus: read code from folders, git repositories, installed packages and GitHub
archives (`sources`), clean it stage by stage (`clean`), and cut it into shards that tokenize
concurrently (`shards`). Plain Python: the pretraining flow composes these, the tests call them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mlstack.errors import InputError, MlstackError


class CorpusError(MlstackError):
    """The corpus cannot be used as it is (too small, too much removed): the message says why."""


class SourceError(InputError):
    """A corpus source that cannot be read as given."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One file of code: `path` is its identity within the corpus (source and relative path)."""

    path: str
    text: str
    license: str | None = None

    @property
    def hash(self) -> str:
        return text_hash(self.text)
