"""How many items an LVLM job runs at once, and running a job in batches.

The batch size is the caller's when given; otherwise on CUDA it is chosen from free GPU memory and a
per-item memory estimate from the model config (`estimate_item_bytes`), and on CPU it is `CPU_BATCH`
(`LVLMBackend.resolve_batch_size` in backend.py is the one resolver). Items are sorted by tokenised
prompt length, longest first, so that each batch pads little; results come back in the caller's
order (`BatchRunner`), and an automatic batch that runs out of GPU memory is halved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch

from vlmrec.errors import ConfigError, ModelError
from vlmrec.features.lvlm.options import GenerationOptions, Mode

log = logging.getLogger(__name__)

BatchSource = Literal["explicit", "auto", "cpu-default", "vllm"]
MIN_BATCH, MAX_BATCH = 1, 256
CPU_BATCH = 8  # default batch on CPU, where memory is not the limit and batches gain little
MEMORY_HEADROOM = 0.8  # share of the free GPU memory an automatically chosen batch may use
PROBE_IMAGE_SIZE = 448  # side of the square probe image used to count image tokens

T = TypeVar("T")


@dataclass(frozen=True)
class BatchChoice:
    """The batch size an LVLM job runs with, and where it came from."""

    size: int
    source: BatchSource
    item_bytes: int | None = None  # the per-item memory estimate behind an automatic choice
    prompt_tokens: int | None = None  # the probe's prompt length behind that estimate

    def manifest(self) -> dict[str, Any]:
        """What a FeatureSet manifest records (no free-memory figure: it must not change the resume key)."""
        out: dict[str, Any] = {"batch_size": self.size, "batch_size_source": self.source}
        if self.item_bytes is not None:
            out["batch_item_mib_estimate"] = round(self.item_bytes / 2**20, 1)
            out["batch_probe_prompt_tokens"] = self.prompt_tokens
        return out


# what a caller may pass as a batch size: a number, a resolved choice, or None to choose automatically
BatchSize = int | BatchChoice | None


def _attr(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def _vision_bytes(config: Any, image_tokens: int, dtype_bytes: int) -> int:
    """Working set of the vision tower for one image: its patches (image tokens times the merge the
    projector applies) through one block, plus the attention scores."""
    v = getattr(config, "vision_config", None)
    if v is None or image_tokens <= 0:
        return 0
    width = int(_attr(v, "embed_dim", "hidden_size", default=0))
    inter = int(_attr(v, "intermediate_size", default=width * _attr(v, "mlp_ratio", default=4)))
    heads = int(_attr(v, "num_heads", "num_attention_heads", default=1))
    merge = (
        int(_attr(v, "spatial_merge_size", default=1)) ** 2
        * int(_attr(config, "scale_factor", default=1)) ** 2
    )
    patches = image_tokens * merge
    return patches * (4 * width + 3 * inter) * dtype_bytes + patches * patches * heads * dtype_bytes


def estimate_item_bytes(
    config: Any,
    prompt_tokens: int,
    image_tokens: int,
    mode: Mode,
    generation: GenerationOptions | None = None,
    dtype_bytes: int = 2,
) -> int:
    """GPU memory one item adds to a batch, from the model config (weights excluded: already loaded).

    With S prompt tokens (image tokens included), N new tokens, L layers, hidden size H, MLP width I,
    h attention heads, h_kv key/value heads of width d, b bytes per value and k beams:
      activations  S (4H + 3I) b + S^2 h b       one decoder layer's working set and attention scores
      KV cache     2 L h_kv d (S + N) b k        generate only (embed runs without a cache)
      scores       2 V 4 k                       generate only: float32 logits of one step
      vision       P (4W + 3J) b + P^2 h_v b     P patches of width W, MLP J, h_v heads
      kept layer   S H 4                         embed only: the captured layer in float32
    An estimate for choosing a batch, checked against measured peaks by benchmarks/lvlm_throughput.py.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    layers = int(text.num_hidden_layers)
    heads = int(_attr(text, "num_attention_heads", default=1))
    kv_heads = int(_attr(text, "num_key_value_heads", default=heads))
    head_dim = int(_attr(text, "head_dim", default=hidden // heads))
    inter = int(_attr(text, "intermediate_size", default=4 * hidden))
    s = int(prompt_tokens)
    act = s * (4 * hidden + 3 * inter) * dtype_bytes + s * s * heads * dtype_bytes
    vision = _vision_bytes(config, image_tokens, dtype_bytes)
    if mode == "embed":
        return act + vision + s * hidden * 4
    gen = generation or GenerationOptions()
    beams = gen.num_beams
    kv = 2 * layers * kv_heads * head_dim * (s + gen.max_new_tokens) * dtype_bytes * beams
    scores = 2 * int(_attr(text, "vocab_size", default=0)) * 4 * beams
    return act * beams + kv + scores + vision


def batch_candidates(lo: int = MIN_BATCH, hi: int = MAX_BATCH) -> list[int]:
    """Batch sizes an automatic choice may take: powers of two and 1.5 times them (1, 2, 3, 4, 6, 8,
    12, ..., 192, 256), within [lo, hi]."""
    sizes = {2**k for k in range(0, 16)} | {3 * 2**k for k in range(0, 15)}
    return sorted(n for n in sizes if lo <= n <= hi)


def choose_batch_size(
    free_bytes: int,
    item_bytes: int,
    headroom: float = MEMORY_HEADROOM,
    lo: int = MIN_BATCH,
    hi: int = MAX_BATCH,
) -> int:
    """The largest of `batch_candidates(lo, hi)` whose items fit in `headroom` of the free memory
    (`lo` when none does). A coarse ladder keeps the choice, and so a resumed run's configuration,
    stable as free memory wobbles, while wasting at most a third of the memory that fits."""
    fits = int(free_bytes * headroom // max(int(item_bytes), 1))
    candidates = batch_candidates(lo, hi)
    return max([n for n in candidates if n <= fits], default=candidates[0])


def length_order(lengths: Sequence[int]) -> list[int]:
    """Positions sorted by length, longest first (ties keep their order): similar lengths share a
    batch, and the largest batch in memory runs first."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def checked_batch_size(requested: int | None) -> int | None:
    """A caller's batch size as an int (None: unset, choose automatically); below 1 is an error."""
    if requested is None:
        return None
    if int(requested) < 1:
        raise ConfigError(f"batch_size {requested}: must be >= 1 (or unset for automatic)")
    return int(requested)


class BatchRunner:
    """Runs a job in batches of positions sorted by length; results in the original order. An
    automatic batch that runs out of GPU memory is halved, and stays halved for later jobs of the
    same mode (`oom_cap`); an explicit one raises, naming the option to change."""

    def __init__(self) -> None:
        self.oom_cap: dict[str, int] = {}  # per mode: an automatic batch size halved after an OOM

    def __call__(
        self, lengths: Sequence[int], batch: BatchChoice, mode: Mode, run: Callable[[list[int]], Iterable[T]]
    ) -> list[T]:
        """`run` applied to batches of positions into `lengths`, longest first; results by position."""
        order = length_order(lengths)
        results: list[Any] = [None] * len(lengths)
        size = min(batch.size, self.oom_cap.get(mode, batch.size)) if batch.source == "auto" else batch.size
        start = 0
        while start < len(order):
            idx = order[start : start + size]
            try:
                out = run(idx)
            except torch.cuda.OutOfMemoryError as e:
                if batch.source != "auto" or size == 1:
                    raise ModelError(
                        f"out of GPU memory at batch size {size}; pass a smaller --batch-size "
                        "(or leave it unset to choose from free memory)"
                    ) from e
                torch.cuda.empty_cache()
                size = self.oom_cap[mode] = size // 2
                log.warning("out of GPU memory: batch size halved to %d for the rest of this run", size)
                continue
            for i, r in zip(idx, out):
                results[i] = r
            start += len(idx)
        return results
