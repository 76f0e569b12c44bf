"""Hidden states of an LVLM's text decoder: which layers (`resolve_layers`), capturing only those
(`hidden_states_at`) and pooling tokens to one vector per item (`pool`).

Layers. Forward hooks on the text decoder capture the requested hidden state(s) and stop the forward
pass there, so neither the later layers, nor the LM head's logits, nor the other layers' hidden
states are computed or held. Indices follow transformers' `output_hidden_states`: 0 is the input of
the first decoder layer (the embeddings, image features merged in), i the output of layer i, and the
last (-1) the decoder's output after its final norm. Layer: an index into the hidden states (-1
last, 0 embeddings) or "mean_last_N".

Pooling (B items, T tokens, hidden states H of the chosen layer):
  mean    sum_t m_t H_t / sum_t m_t   over attended tokens (attention mask m)
  image   the same over image-placeholder tokens (input_ids == image_token_id)
  prompt  the same over attended non-image tokens
  last    H at the last attended position
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from vlmrec.errors import ModelError


class _Captured(Exception):
    """Raised by a capture hook once every requested layer is held: the rest of the forward is skipped."""


def text_decoder(model: Any) -> torch.nn.Module | None:
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


def hidden_states_at(
    model: Any, decoder: torch.nn.Module | None, batch: dict[str, torch.Tensor], indices: list[int], name: str
) -> torch.Tensor:
    """The hidden state at `indices` for one processed batch (several averaged in float32): captured
    by hooks on `decoder` where there is one, else from a full `output_hidden_states` forward."""
    if decoder is not None:
        with capture_hidden_states(decoder, set(indices)) as got:
            try:
                model(**batch, use_cache=False)
            except _Captured:
                pass
        if set(got) != set(indices):
            raise ModelError(f"{name}: the layer hooks saw hidden states {sorted(got)}, not {indices}")
        states = [got[i] for i in indices]
    else:
        hidden_states = model(**batch, output_hidden_states=True, use_cache=False).hidden_states
        states = [hidden_states[i] for i in indices]
    return states[0].float() if len(states) == 1 else torch.stack([s.float() for s in states]).mean(0)
