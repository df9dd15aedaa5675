"""All trees of a fitted HistGradientBoostingRegressor, evaluated at once with numpy.

scikit-learn predicts tree by tree from Python: about 20-40 µs per tree per call whatever the
number of rows, so one online request to a 200-tree model costs several milliseconds. Here the
trees become padded node arrays and every row walks every tree together, one depth level per
numpy step. The routing repeats sklearn's `_predict_one_from_raw_data` (missing values and
unknown categories follow `missing_go_to_left`), and the tests hold it to sklearn's output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor


class CompiledTrees:
    """Drop-in `predict` for a fitted single-output HistGradientBoostingRegressor."""

    MAX_ROWS = 128  # measured: past ~100 rows sklearn's C loop catches up

    def __init__(self, model: HistGradientBoostingRegressor) -> None:
        trees = [p for per_iteration in model._predictors for p in per_iteration]
        if model.n_trees_per_iteration_ != 1:
            raise ValueError("only single-output regressors can be compiled")
        # One flat node table for all trees; children become global indices. A leaf points to
        # itself on both sides with an infinite threshold, so every row can take the same number
        # of steps and rows that reached a leaf simply stay there.
        sizes = [len(t.nodes) for t in trees]
        offsets = np.cumsum([0, *sizes[:-1]])
        nodes = np.concatenate([t.nodes for t in trees])
        starts = np.repeat(offsets, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(len(nodes))
        self.feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64)
        self.threshold = np.where(leaf, np.inf, nodes["num_threshold"])
        self.left = np.where(leaf, own, nodes["left"] + starts).astype(np.int64)
        self.right = np.where(leaf, own, nodes["right"] + starts).astype(np.int64)
        self.missing_left = np.where(leaf, True, nodes["missing_go_to_left"].astype(bool))
        self.categorical = nodes["is_categorical"].astype(bool) & ~leaf
        self.value = np.where(leaf, nodes["value"], 0.0)
        self.cat_row, self.cat_left = self._category_table(
            trees, sizes, nodes, np.flatnonzero(self.categorical), model
        )
        self.roots = offsets.astype(np.int64)[:, None]
        self.baseline = float(np.ravel(model._baseline_prediction)[0])
        self.inverse_link = model._loss.link.inverse
        self.depth = int(max(t.nodes["depth"].max() for t in trees))
        self.columns = list(getattr(model, "feature_names_in_", []))
        self.model = model
        self._encoding = self._ordinal_encoding(model)

    @staticmethod
    def _category_table(
        trees: list,
        sizes: list[int],
        nodes: np.ndarray,
        cat_nodes: np.ndarray,
        model: HistGradientBoostingRegressor,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where each categorical split sends each code, looked up in one step.

        Row r of the table answers for one categorical node: columns 0-255 are the codes (left
        when the node's bitset has it; right when the category is known to the model; else as a
        missing value), column 256 is for values that are no category at all (NaN, negative, too
        big), which go as missing values do. Row 0 is a dummy for numeric nodes.
        """
        # Each tree numbers its categorical bitsets from 0: shift them into one shared table.
        shift = np.repeat(np.cumsum([0] + [len(t.raw_left_cat_bitsets) for t in trees[:-1]]), sizes)
        bitsets = [t.raw_left_cat_bitsets for t in trees if len(t.raw_left_cat_bitsets)]
        left_bitsets = np.concatenate(bitsets) if bitsets else np.zeros((1, 8), np.uint32)
        known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        codes = np.arange(256)

        def has_bit(bitset_rows: np.ndarray) -> np.ndarray:  # (nodes, 8 words) -> (nodes, 256)
            return ((bitset_rows[:, codes // 32] >> (codes % 32).astype(np.uint32)) & 1).astype(bool)

        in_left = has_bit(left_bitsets[(nodes["bitset_idx"] + shift)[cat_nodes]])
        known = has_bit(known_bitsets[f_idx_map[nodes["feature_idx"][cat_nodes]].astype(np.int64)])
        missing_left = nodes["missing_go_to_left"][cat_nodes].astype(bool)[:, None]
        table = np.zeros((len(cat_nodes) + 1, 257), dtype=bool)
        table[1:, :256] = in_left | (~known & missing_left)
        table[1:, 256] = missing_left[:, 0]
        row = np.zeros(len(nodes), dtype=np.int64)
        row[cat_nodes] = np.arange(1, len(cat_nodes) + 1)
        return row, table.ravel()

    @staticmethod
    def _ordinal_encoding(model: HistGradientBoostingRegressor) -> tuple[np.ndarray, np.ndarray, list] | None:
        """sklearn puts categorical columns first, as ordinal codes (unknown: NaN), then the rest."""
        pre = model._preprocessor
        if pre is None:
            return None
        masks = {name: np.asarray(columns) for name, _, columns in pre.transformers_ if name != "remainder"}
        categories = [np.asarray(c, dtype=np.float64) for c in pre.named_transformers_["encoder"].categories_]
        return np.flatnonzero(masks["encoder"]), np.flatnonzero(masks["numerical"]), categories

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        if self._encoding is None:
            return x
        cat_idx, num_idx, categories = self._encoding
        codes = []
        for column, cats in zip(cat_idx, categories, strict=True):
            values = x[:, column]
            pos = np.clip(np.searchsorted(cats, values), 0, len(cats) - 1)
            codes.append(np.where(cats[pos] == values, pos, np.nan))
        return np.column_stack([*codes, x[:, num_idx]])

    def predict(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        if len(x) > self.MAX_ROWS:  # sklearn's per-row loop in C wins for big batches
            return self.model.predict(x)
        if isinstance(x, pd.DataFrame):
            if self.columns and list(x.columns) != self.columns:
                x = x[self.columns]
            x = x.to_numpy(dtype=np.float64)
        x = self._preprocess(np.asarray(x, dtype=np.float64))
        n_rows, n_features = x.shape
        flat_x = x.ravel()
        row_base = (np.arange(n_rows) * n_features)[None, :]
        node = np.repeat(self.roots, n_rows, axis=1)
        for _ in range(self.depth):
            feature = self.feature.take(node)
            value = flat_x.take(row_base + feature)
            missing = np.isnan(value)
            left = value <= self.threshold.take(node)
            if missing.any():
                left = np.where(missing, self.missing_left.take(node), left)
            categorical = self.categorical.take(node)
            if categorical.any():
                code = np.where((value >= 0) & (value < 256), value, 256).astype(np.int64)
                left = np.where(categorical, self.cat_left.take(self.cat_row.take(node) * 257 + code), left)
            node = np.where(left, self.left.take(node), self.right.take(node))
        return self.inverse_link(self.baseline + self.value.take(node).sum(axis=0))


def compile_model(model: Any) -> Any:
    """A compiled predictor when the model is a single-output HistGradientBoostingRegressor."""
    if isinstance(model, HistGradientBoostingRegressor) and model.n_trees_per_iteration_ == 1:
        return CompiledTrees(model)
    return model
