# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # RAG playground
#
# One question against the demo's collection in the three search modes side by side (vector,
# full text, and their fusion, hybrid), with each hit's score and its best chunk's cosine
# similarity, then the answer `rag ask` would give, with its citations. Change `QUESTION`.

# %%
import mlstack.bootstrap  # noqa: F401  (first: the data dir and Prefect's defaults)

import pandas as pd

from mlstack.rag import answer, defaults, retrieve, store
from mlstack.settings import get_settings

QUESTION = "Why did a second drift alert not retrain the model?"
settings = get_settings()
embedder = defaults.embedder(settings)
collection = settings.rag.collection

# %%
with store.connect(settings) as conn:
    found = retrieve.search_modes(
        conn,
        store.require_collection(conn, collection),
        QUESTION,
        embedder.embed([QUESTION])[0],
        k=settings.rag.k,
    )
rows = [
    {"mode": mode, "rank": rank, "title": hit.title, "score": hit.score, "similarity": hit.similarity}
    for mode, hits in found.items()
    for rank, hit in enumerate(hits, 1)
]
pd.DataFrame(rows).pivot(index="rank", columns="mode", values="title")

# %%
pd.DataFrame(rows).pivot(index="rank", columns="mode", values=["score", "similarity"]).round(3)

# %% [markdown]
# ## The answer
#
# Extractive here (the closest sentences, quoted with their citation numbers): set
# `MLSTACK_LLM_PROVIDER` and a model to have one written, as `mlstack rag ask` does.

# %%
result = answer.answer(QUESTION, found["hybrid"], embedder, None, settings.rag.min_similarity)
print(result.mode, f"(best similarity {result.best_similarity:.2f})\n")
print(result.answer)
pd.DataFrame([vars(c) for c in result.citations])
