"""Retrieval-augmented generation: an organisation's GitHub, Slack and docs, kept fresh in pgvector,
searched by meaning and by words, and answered with numbered citations.

`sources/` reads each external system into `Document`s; `chunking` cuts them; `store` keeps them
in Postgres (its own migrations, one advisory lock per collection); `refresh` decides what changed;
`retrieve` searches (vector, full text, hybrid); `answer` cites; `evaluate` scores retrieval.
"""

from mlstack.errors import MlstackError


class RAGError(MlstackError):
    """A RAG step cannot go on; the message says what to do."""
