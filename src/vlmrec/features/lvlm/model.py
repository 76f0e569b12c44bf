"""Large vision-language models (transformers, vLLM) for item representations: one import for the
pieces, which live one concern per module.

Two uses, both under a structured prompt (see prompts.py):
  embed:    image + prompt -> hidden states -> one pooled vector per item (Pomo et al.)
  generate: image + prompt -> text (decoded descriptions, FITB attributes; VLM4Rec)

  options.py               GenerationOptions (decoding), pooling and mode names
  batching.py              batch size from memory, length-sorted batches
  backend.py               LVLMBackend: the one batch-size resolver and `generate` entry point
  layers.py                which hidden states, capturing only those, pooling tokens to a vector
  chat.py                  the chat text every back-end reads (one builder)
  transformers_backend.py  LVLM: a transformers checkpoint with `embed` and `generate`
  vllm_backend.py          VLLMGenerator: `generate` at scale with vLLM (GPU only, optional)
"""

from vlmrec.features.lvlm.backend import LVLMBackend
from vlmrec.features.lvlm.batching import (
    CPU_BATCH,
    MAX_BATCH,
    MEMORY_HEADROOM,
    MIN_BATCH,
    PROBE_IMAGE_SIZE,
    BatchChoice,
    BatchRunner,
    BatchSize,
    BatchSource,
    batch_candidates,
    choose_batch_size,
    estimate_item_bytes,
    length_order,
)
from vlmrec.features.lvlm.layers import (
    capture_hidden_states,
    pool,
    resolve_layers,
    select_layer,
    text_decoder,
)
from vlmrec.features.lvlm.options import NO_LVLM_HELP, POOLINGS, GenerationOptions, Mode, Pooling
from vlmrec.features.lvlm.transformers_backend import LVLM, STATIC_CACHE_STEP
from vlmrec.features.lvlm.vllm_backend import VLLMGenerator

__all__ = [
    "CPU_BATCH",
    "LVLM",
    "MAX_BATCH",
    "MEMORY_HEADROOM",
    "MIN_BATCH",
    "NO_LVLM_HELP",
    "POOLINGS",
    "PROBE_IMAGE_SIZE",
    "STATIC_CACHE_STEP",
    "BatchChoice",
    "BatchRunner",
    "BatchSize",
    "LVLMBackend",
    "BatchSource",
    "GenerationOptions",
    "Mode",
    "Pooling",
    "VLLMGenerator",
    "batch_candidates",
    "capture_hidden_states",
    "choose_batch_size",
    "estimate_item_bytes",
    "length_order",
    "pool",
    "resolve_layers",
    "select_layer",
    "text_decoder",
]
