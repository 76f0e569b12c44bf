"""Large vision-language models (transformers) for item representations.

Two uses, both under a structured prompt (see prompts.py):
  embed:    image + prompt -> hidden states -> one pooled vector per item (Pomo et al.)
  generate: image + prompt -> text (decoded descriptions, FITB attributes; VLM4Rec)

Any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` load works (LLaVA /
LLaVA-NeXT, Idefics3 / SmolVLM, Qwen2-VL / Qwen2.5-VL, PaliGemma...; Phi-3.5-vision with
trust_remote_code). Chat templates are applied through the processor. On GPU the weights are
bf16 (fp16 where bf16 is unsupported); 4-bit when asked and bitsandbytes is installed.

Batching. `embed` and `generate` take a whole job (any number of items) and a batch size. Items are
sorted by tokenised prompt length (text tokens plus the image tokens the processor will insert),
longest first, so that each batch pads little; results come back in the caller's order. The batch
size is the caller's when given; otherwise on CUDA it is chosen from free GPU memory and a per-item
memory estimate from the model config (`estimate_item_bytes`), and on CPU it is `CPU_BATCH`.

Layers. `embed` keeps only the requested hidden state(s): forward hooks on the text decoder capture
them and stop the forward pass there, so neither the later layers, nor the LM head's logits, nor
the other layers' hidden states are computed or held. Indices follow transformers'
`output_hidden_states`: 0 is the input of the first decoder layer (the embeddings, image features
merged in), i the output of layer i, and the last (-1) the decoder's output after its final norm.

Pooling (B items, T tokens, hidden states H of the chosen layer):
  mean    sum_t m_t H_t / sum_t m_t   over attended tokens (attention mask m)
  image   the same over image-placeholder tokens (input_ids == image_token_id)
  prompt  the same over attended non-image tokens
  last    H at the last attended position
Layer: an index into the hidden states (-1 last, 0 embeddings) or "mean_last_N".

Generation options (`GenerationOptions`): greedy by default; sampling, beams, repetition penalty and
min/max new tokens as in transformers; `cache_implementation="static"` and `compile=True` are
opt-in speed options (a static KV cache, and transformers' `torch.compile` of the decoding step).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, get_args

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vlmrec.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

Pooling = Literal["mean", "image", "prompt", "last"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
Mode = Literal["embed", "generate"]
BatchSource = Literal["explicit", "auto", "cpu-default", "vllm"]
MIN_BATCH, MAX_BATCH = 1, 256
CPU_BATCH = 8  # default batch on CPU, where memory is not the limit and batches gain little
MEMORY_HEADROOM = 0.8  # share of the free GPU memory an automatically chosen batch may use
PROBE_IMAGE_SIZE = 448  # side of the square probe image used to count image tokens
STATIC_CACHE_STEP = 128  # static KV caches are sized in steps of this many tokens (fewer recompiles)
NO_LVLM_HELP = (
    "no LVLM weights are available offline here: pass --model with a local checkpoint folder "
    "(e.g. a downloaded Qwen2-VL, LLaVA or SmolVLM) or a hub id on a machine that can reach a hub. "
    "Offline, use the label+OCR describer instead: `vlmrec extract --extractor describe-ocr` "
    "(it is not an LVLM and says so in its outputs)."
)

T = TypeVar("T")


def _pick_device_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype:
        return dev, getattr(torch, dtype)
    if dev.type == "cuda":
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


# ---- options ---------------------------------------------------------------------------------


class GenerationOptions(BaseModel):
    """How `LVLM.generate` decodes; greedy unless `do_sample`. Unknown keys are rejected.

    Sampling knobs (temperature, top_p, top_k) are errors without `do_sample=True`; when sampling,
    unset ones are passed as their neutral values (1.0, 1.0, off) so that a checkpoint's own
    `generation_config.json` cannot change them unseen. `seed` seeds torch before sampling.
    `cache_implementation` and `compile` change speed, not the decoded text (up to float rounding),
    so they are left out of `decoding()` (the description cache key) but recorded in manifests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(96, ge=1, description="longest generated answer, in tokens")
    min_new_tokens: int = Field(0, ge=0, description="shortest generated answer, in tokens")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float | None = Field(None, gt=0, description="sampling temperature (do_sample only)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass (do_sample only)")
    top_k: int | None = Field(None, ge=0, description="sample from the k likeliest tokens (do_sample only)")
    num_beams: int = Field(1, ge=1, description="beam search width (1: no beam search)")
    repetition_penalty: float = Field(1.0, gt=0, description="penalty on repeated tokens (1: none)")
    seed: int = Field(0, description="torch seed set before sampling")
    cache_implementation: Literal["dynamic", "static"] = Field(
        "dynamic", description="KV cache kind (speed only; static allows compile)"
    )
    compile: bool = Field(False, description="torch.compile the decoding step (speed only)")

    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("cache_implementation", "compile")

    @model_validator(mode="after")
    def _consistent(self) -> GenerationOptions:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) > max_new_tokens ({self.max_new_tokens})"
            )
        sampling = [k for k in ("temperature", "top_p", "top_k") if getattr(self, k) is not None]
        if sampling and not self.do_sample:
            raise ValueError(f"{', '.join(sampling)} apply only with do_sample=True (decoding is greedy)")
        if self.compile and self.cache_implementation != "static":
            raise ValueError(
                "compile=True needs cache_implementation='static' (transformers compiles the decoding step "
                "only with a static KV cache)"
            )
        return self

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GenerationOptions:
        """Validate a plain dict (CLI, YAML); errors name the offending key."""
        try:
            return cls(**options)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'options'}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(
                f"generation options: {problems} (valid keys: {', '.join(cls.model_fields)})"
            ) from None

    def decoding(self) -> dict[str, Any]:
        """The options that change the decoded text (the key of cached descriptions)."""
        return self.model_dump(exclude=set(self.SPEED_FIELDS))

    def generate_kwargs(self, device: torch.device) -> dict[str, Any]:
        """Keyword arguments for `transformers` `generate` (every decoding choice explicit)."""
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.min_new_tokens:
            kw["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kw.update(
                temperature=self.temperature if self.temperature is not None else 1.0,
                top_p=self.top_p if self.top_p is not None else 1.0,
                top_k=self.top_k or 0,
            )
        if self.cache_implementation == "static":
            kw["cache_implementation"] = "static"
            if self.compile:
                from transformers import CompileConfig

                compile_config = CompileConfig()
                if device.type == "cpu":  # transformers compiles on accelerators only unless told
                    # transformers declares this private switch as `= None`, though it is a bool
                    compile_config._compile_all_devices = True  # type: ignore[assignment]
                kw["compile_config"] = compile_config
            else:  # transformers would otherwise compile on its own whenever the cache is static
                kw["disable_compile"] = True
        return kw


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


# ---- batch size from memory ------------------------------------------------------------------


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


# ---- layer capture -------------------------------------------------------------------------


class _Captured(Exception):
    """Raised by a capture hook once every requested layer is held: the rest of the forward is skipped."""


def text_decoder(model: PreTrainedModel) -> torch.nn.Module | None:
    """The language model's decoder stack (the module with `layers`, one per text layer), or None."""
    n = model.config.get_text_config().num_hidden_layers
    candidates: list[torch.nn.Module] = []
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        try:
            candidates.append(get_decoder())
        except (AttributeError, NotImplementedError, ValueError):
            pass
    candidates += [m for _, m in model.named_modules() if hasattr(m, "embed_tokens")]
    for module in candidates:
        layers = getattr(module, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) == n:
            return module
    return None


@contextmanager
def capture_hidden_states(decoder: torch.nn.Module, indices: set[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Hooks that record hidden states `indices` (0..len(layers), as in `output_hidden_states`) into
    the yielded dict and raise `_Captured` when the last of them is recorded."""
    layers = decoder.layers
    assert isinstance(layers, torch.nn.ModuleList)  # text_decoder only returns such decoders
    n_layers = len(layers)
    captured: dict[int, torch.Tensor] = {}

    def keep(i: int, tensor: torch.Tensor) -> None:
        captured[i] = tensor
        if len(captured) == len(indices):
            raise _Captured

    def first(output: Any) -> torch.Tensor:
        return output[0] if isinstance(output, tuple) else output

    handles = []
    for i in sorted(indices):
        if i == 0:
            handles.append(
                layers[0].register_forward_pre_hook(
                    lambda m, args, kwargs: keep(0, args[0] if args else kwargs["hidden_states"]),
                    with_kwargs=True,
                )
            )
        elif i < n_layers:
            handles.append(layers[i - 1].register_forward_hook(lambda m, a, out, i=i: keep(i, first(out))))
        else:
            handles.append(
                decoder.register_forward_hook(
                    lambda m, a, out: keep(
                        n_layers, out.last_hidden_state if hasattr(out, "last_hidden_state") else first(out)
                    )
                )
            )
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def resolve_layers(layer: int | str, n_hidden: int) -> list[int]:
    """Non-negative hidden-state indices for `layer` (an index, negative from the end, or
    'mean_last_N'), with `n_hidden` = decoder layers + 1."""
    if isinstance(layer, str):
        if layer.startswith("mean_last_"):
            try:
                n = int(layer.rsplit("_", 1)[1])
            except ValueError:
                raise ModelError(f"layer {layer!r}: expected mean_last_N with N an integer") from None
            if not 1 <= n <= n_hidden:
                raise ModelError(f"layer {layer!r}: N must be in 1..{n_hidden} (hidden-state layers)")
            return list(range(n_hidden - n, n_hidden))
        try:
            layer = int(layer)
        except ValueError:
            raise ModelError(f"layer {layer!r}: expected an integer index or 'mean_last_N'") from None
    if not -n_hidden <= layer < n_hidden:
        raise ModelError(f"layer {layer}: the model has {n_hidden} hidden-state layers (0 = embeddings)")
    return [layer % n_hidden]


def select_layer(hidden_states: tuple[torch.Tensor, ...], layer: int | str) -> torch.Tensor:
    """The chosen layer from a full `hidden_states` tuple (mean_last_N averaged in float32)."""
    idx = resolve_layers(layer, len(hidden_states))
    if len(idx) == 1:
        return hidden_states[idx[0]]
    return torch.stack([hidden_states[i].float() for i in idx]).mean(0)


def pool(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention: torch.Tensor,
    pooling: str,
    image_token_id: int | None,
) -> torch.Tensor:
    """Pool token states (B, T, H) to (B, H); see the module docstring."""
    mask = attention.bool()
    if pooling == "last":
        pos = attention.shape[1] - 1 - torch.flip(attention, dims=[1]).argmax(1)
        return hidden[torch.arange(hidden.shape[0]), pos]
    if pooling in ("image", "prompt"):
        if image_token_id is None:
            raise ModelError("this model's config names no image token id; use pooling 'mean' or 'last'")
        is_image = input_ids == image_token_id
        mask = mask & is_image if pooling == "image" else mask & ~is_image
        if not mask.any(1).all():
            raise ModelError(f"pooling {pooling!r}: some inputs have no {pooling} tokens")
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


# ---- the model -------------------------------------------------------------------------------


class LVLM:
    """A transformers image-text-to-text model with batched, length-sorted `embed` and `generate`."""

    def __init__(
        self,
        model: str | None,
        device: str | None = None,
        dtype: str | None = None,
        load_in_4bit: bool = False,
        trust_remote_code: bool = False,
        generation: GenerationOptions | None = None,
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = str(model)
        self.device, self.dtype = _pick_device_dtype(device, dtype)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if load_in_4bit:
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError as e:
                raise ModelError("load_in_4bit needs `pip install bitsandbytes` (GPU only)") from e
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=self.dtype
            )
        if not Path(self.model_id).exists():
            log.warning("LVLM %r is not a local folder; it will be looked up on the model hub", self.model_id)
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(self.model_id, **kwargs)
        except (OSError, ValueError, ImportError) as e:
            raise ModelError(f"cannot load LVLM {self.model_id!r}: {e}\n{NO_LVLM_HELP}") from e
        if not load_in_4bit:
            # PreTrainedModel.to is `@wraps(nn.Module.to)`, typed as the unbound function (self first)
            self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # generation appends on the right; last token = position -1
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
        cfg = self.model.config
        self.image_token_id = getattr(cfg, "image_token_id", None) or getattr(cfg, "image_token_index", None)
        self.generation = generation or GenerationOptions()
        self.decoder = text_decoder(self.model)
        self.num_hidden_states = cfg.get_text_config().num_hidden_layers + 1
        self.layer_capture = (
            "forward hooks" if self.decoder is not None else "output_hidden_states (all layers)"
        )
        if self.decoder is None:
            log.warning("%s: no decoder stack found; embed falls back to output_hidden_states", self.model_id)
        # per mode: an automatic batch size halved after running out of memory
        self._oom_cap: dict[str, int] = {}

    # ---- inputs --------------------------------------------------------------------------
    def _chat_texts(self, prompts: Sequence[str]) -> list[str]:
        texts = []
        for prompt in prompts:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            texts.append(
                self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        return texts

    def inputs(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Processor outputs for one batch (left-padded), on the model's device and dtype."""
        texts = self._chat_texts(prompts)
        batch = self.processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
        return {
            k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in batch.items()
        }

    def prompt_lengths(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[int]:
        """Tokenised length of each item's input: chat text tokens with the image placeholder replaced by
        the image tokens the processor inserts (from the processor's own count where it has one; else
        by processing each item, exact but slower)."""
        counter = getattr(self.processor, "_get_num_multimodal_tokens", None)
        tok = getattr(self.processor, "tokenizer", None)
        if counter is not None and tok is not None and self.image_token_id is not None:
            try:
                n_image = counter(image_sizes=[(im.height, im.width) for im in images]).num_image_tokens
            except (AttributeError, TypeError, ValueError, KeyError):
                n_image = None
            if n_image is not None and len(n_image) == len(images):
                ids = tok(self._chat_texts(prompts))["input_ids"]
                return [len(t) - t.count(self.image_token_id) + int(k) for t, k in zip(ids, n_image)]
        return [int(self.inputs([im], [p])["input_ids"].shape[1]) for im, p in zip(images, prompts)]

    # ---- batch size ----------------------------------------------------------------------
    def free_memory(self) -> int | None:
        """Free bytes on the model's GPU, or None off CUDA."""
        if self.device.type != "cuda":
            return None
        free, _total = torch.cuda.mem_get_info(self.device)
        return int(free)

    def item_memory(
        self, prompt: str, mode: Mode, generation: GenerationOptions | None = None
    ) -> tuple[int, int, int]:
        """(estimated bytes per item, prompt tokens, image tokens) for `prompt` with a
        PROBE_IMAGE_SIZE square image (see `estimate_item_bytes`)."""
        probe = Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE), (128, 128, 128))
        ids = self.inputs([probe], [prompt])["input_ids"]
        image_tokens = int((ids == self.image_token_id).sum()) if self.image_token_id is not None else 0
        dtype_bytes = torch.finfo(self.dtype).bits // 8 if self.dtype.is_floating_point else 2
        item = estimate_item_bytes(
            self.model.config, ids.shape[1], image_tokens, mode, generation or self.generation, dtype_bytes
        )
        return item, int(ids.shape[1]), image_tokens

    def resolve_batch_size(
        self,
        requested: int | None,
        prompt: str,
        mode: Mode,
        generation: GenerationOptions | None = None,
        announce: bool = True,
    ) -> BatchChoice:
        """The caller's batch size if given; else, on CUDA, `choose_batch_size` from the free memory and
        the estimated memory per item (at most MAX_BATCH); else CPU_BATCH.
        `prompt` should be a long prompt of the job (the estimate scales with its length)."""
        if requested is not None:
            if int(requested) < 1:
                raise ConfigError(f"batch_size {requested}: must be >= 1 (or unset for automatic)")
            return BatchChoice(int(requested), "explicit")
        free = self.free_memory()
        if free is None:
            return BatchChoice(CPU_BATCH, "cpu-default")
        item, tokens, image_tokens = self.item_memory(prompt, mode, generation)
        size = choose_batch_size(free, item)
        (log.info if announce else log.debug)(
            "%s batch size %d chosen from %.1f GiB free (about %.0f MiB per item: %d prompt tokens, %d of them "
            "image tokens%s); override with --batch-size",
            mode,
            size,
            free / 2**30,
            item / 2**20,
            tokens,
            image_tokens,
            f", {(generation or self.generation).max_new_tokens} new tokens" if mode == "generate" else "",
        )
        return BatchChoice(size, "auto", item, tokens)

    def _batches(
        self,
        lengths: Sequence[int],
        batch: BatchChoice,
        mode: Mode,
        run: Callable[[list[int]], Iterable[T]],
    ) -> list[T]:
        """Run `run` on batches of positions in length order; results in the original order. An
        automatic batch that runs out of GPU memory is halved (and stays halved); an explicit one
        raises, naming the option to change."""
        order = length_order(lengths)
        results: list[Any] = [None] * len(lengths)
        size = min(batch.size, self._oom_cap.get(mode, batch.size)) if batch.source == "auto" else batch.size
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
                size = self._oom_cap[mode] = size // 2
                log.warning("out of GPU memory: batch size halved to %d for the rest of this run", size)
                continue
            for i, r in zip(idx, out):
                results[i] = r
            start += len(idx)
        return results

    # ---- embeddings ----------------------------------------------------------------------
    @torch.no_grad()
    def embed(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        layer: int | str = -1,
        pooling: str = "mean",
        batch_size: int | BatchChoice | None = None,
    ) -> np.ndarray:
        """One pooled float32 vector per (image, prompt), in input order. `batch_size`: an int, a
        resolved `BatchChoice`, or None to choose (see `resolve_batch_size`)."""
        if pooling not in POOLINGS:
            raise ModelError(f"pooling {pooling!r}: choose one of {POOLINGS}")
        indices = resolve_layers(layer, self.num_hidden_states)
        if not len(images):
            return np.zeros((0, self.model.config.get_text_config().hidden_size), np.float32)
        lengths = self.prompt_lengths(images, prompts)
        batch = self._as_choice(batch_size, prompts, lengths, "embed", self.generation)

        def run(idx: list[int]) -> np.ndarray:
            return self._embed_batch([images[i] for i in idx], [prompts[i] for i in idx], indices, pooling)

        return np.stack(self._batches(lengths, batch, "embed", run)).astype(np.float32, copy=False)

    def _embed_batch(
        self, images: list[Image.Image], prompts: list[str], indices: list[int], pooling: str
    ) -> np.ndarray:
        batch = self.inputs(images, prompts)
        if self.decoder is not None:
            with capture_hidden_states(self.decoder, set(indices)) as got:
                try:
                    self.model(**batch, use_cache=False)
                except _Captured:
                    pass
            if set(got) != set(indices):
                raise ModelError(
                    f"{self.model_id}: the layer hooks saw hidden states {sorted(got)}, not {indices}"
                )
            states = [got[i] for i in indices]
        else:
            hidden_states = self.model(**batch, output_hidden_states=True, use_cache=False).hidden_states
            states = [hidden_states[i] for i in indices]
        hidden = states[0].float() if len(states) == 1 else torch.stack([s.float() for s in states]).mean(0)
        return (
            pool(hidden, batch["input_ids"], batch["attention_mask"], pooling, self.image_token_id)
            .cpu()
            .numpy()
        )

    def _as_choice(
        self,
        batch_size: int | BatchChoice | None,
        prompts: Sequence[str],
        lengths: Sequence[int],
        mode: Mode,
        generation: GenerationOptions,
    ) -> BatchChoice:
        if isinstance(batch_size, BatchChoice):
            return batch_size
        longest = prompts[int(np.argmax(lengths))]
        return self.resolve_batch_size(batch_size, longest, mode, generation, announce=False)

    # ---- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        options: GenerationOptions | None = None,
        batch_size: int | BatchChoice | None = None,
    ) -> list[str]:
        """Decoded answers, in input order. `options` default to the model's; `max_new_tokens`
        overrides theirs. Sampling, when asked, is seeded with `options.seed` at each call."""
        opts = options or self.generation
        if max_new_tokens is not None and max_new_tokens != opts.max_new_tokens:
            opts = GenerationOptions.from_options({**opts.model_dump(), "max_new_tokens": max_new_tokens})
        if not len(images):
            return []
        lengths = self.prompt_lengths(images, prompts)
        batch = self._as_choice(batch_size, prompts, lengths, "generate", opts)
        kwargs = opts.generate_kwargs(self.device)
        if opts.cache_implementation == "static":
            # one cache length for the whole job, so the compiled decoding step keeps its shapes
            need = max(lengths) + opts.max_new_tokens
            kwargs["max_cache_len"] = STATIC_CACHE_STEP * math.ceil(need / STATIC_CACHE_STEP)
        if opts.do_sample:
            torch.manual_seed(opts.seed)

        def run(idx: list[int]) -> list[str]:
            inputs = self.inputs([images[i] for i in idx], [prompts[i] for i in idx])
            # transformers types generate() for a Protocol its own Auto classes do not match, and
            # the processor's tensors (input_ids, pixel_values, ...) go to its **kwargs
            out = self.model.generate(**inputs, **kwargs)  # type: ignore[misc, arg-type]
            new = out[:, inputs["input_ids"].shape[1] :]
            return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

        return self._batches(lengths, batch, "generate", run)

    def describe(self) -> dict[str, Any]:
        """Provenance of the model for manifests."""
        return {
            "model": self.model_id,
            "architecture": type(self.model).__name__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "processor": type(self.processor).__name__,
        }


class VLLMGenerator:
    """Generation at scale with vLLM (GPU only, optional): the same chat prompts and decoding options
    as `LVLM.generate`. vLLM schedules its own batches (continuous batching), so a batch size only
    sets how many items are handed over at once. Embeddings stay on the transformers backend (vLLM
    exposes no hidden states). Beam search and the static-cache/compile options are transformers
    options and are refused here."""

    def __init__(
        self,
        model: str | None,
        generation: GenerationOptions | None = None,
        trust_remote_code: bool = False,
        **engine_kwargs: Any,
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        self.generation = generation or GenerationOptions()
        self._check(self.generation)
        try:
            from vllm import LLM
        except ImportError as e:
            raise ModelError(
                "the vLLM backend needs `pip install vllm` on a GPU machine; "
                "use the default transformers backend otherwise"
            ) from e
        from transformers import AutoProcessor

        self.model_id = str(model)
        self.processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=trust_remote_code)
        self.llm = LLM(
            model=self.model_id,
            trust_remote_code=trust_remote_code,
            limit_mm_per_prompt={"image": 1},
            **engine_kwargs,
        )

    @staticmethod
    def _check(opts: GenerationOptions) -> None:
        if opts.num_beams > 1 or opts.cache_implementation != "dynamic" or opts.compile:
            raise ConfigError(
                "the vLLM backend takes no num_beams > 1, cache_implementation or compile "
                "(transformers options); use the transformers backend for them"
            )

    def resolve_batch_size(
        self,
        requested: int | None,
        prompt: str,
        mode: Mode,
        generation: GenerationOptions | None = None,
        announce: bool = True,
    ) -> BatchChoice:
        """Items handed to vLLM per call (it batches them itself)."""
        return BatchChoice(int(requested or 256), "vllm")

    def generate(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        options: GenerationOptions | None = None,
        batch_size: int | BatchChoice | None = None,
    ) -> list[str]:
        """Decoded answers, in input order (vLLM keeps the request order)."""
        from vllm import SamplingParams

        opts = options or self.generation
        self._check(opts)
        params = SamplingParams(
            temperature=(opts.temperature if opts.temperature is not None else 1.0)
            if opts.do_sample
            else 0.0,
            top_p=opts.top_p if opts.top_p is not None else 1.0,
            top_k=opts.top_k or -1,
            max_tokens=max_new_tokens or opts.max_new_tokens,
            min_tokens=opts.min_new_tokens,
            repetition_penalty=opts.repetition_penalty,
            seed=opts.seed if opts.do_sample else None,
        )
        requests = []
        for image, text in zip(images, self._chat_texts(prompts)):
            requests.append({"prompt": text, "multi_modal_data": {"image": image}})
        outputs = self.llm.generate(requests, params)
        return [o.outputs[0].text.strip() for o in outputs]

    def _chat_texts(self, prompts: Sequence[str]) -> list[str]:
        return [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for p in prompts
        ]

    def describe(self) -> dict[str, Any]:
        """Provenance of the model for manifests."""
        return {
            "model": self.model_id,
            "architecture": "vLLM",
            "dtype": "auto",
            "processor": type(self.processor).__name__,
        }
