"""Fusion of feature sets into one (Pomo et al.'s early-fusion baselines).

Every input enters on the same footing, so that no modality wins by its scale, its offset or its
dimension. For concat, mean, sum and weighted, each input k is

  1. row-L2-normalised (the raw scale of an extractor carries no meaning),
  2. centred: its mean row is subtracted (an offset shared by every item carries no
     information, yet after normalisation it would otherwise dominate the row),
  3. projected to the common dimension d = min_k dim_k by PCA where dim_k > d (mean/sum/weighted
     only; concat keeps every dimension),
  4. row-L2-normalised again, giving z_k with ||z_k|| = 1 for every item the input processed,

and then combined:

  concat   [z_1 | z_2 | ...]
  mean     sum_k z_k / K
  sum      sum_k z_k
  weighted sum_k w_k z_k / sum_k w_k
  align    mean(x_text, W x_image): W the ridge least-squares map from the image space into the
           text space, fitted on items seen in training only (no test leakage); both sides are
           row-L2-normalised (steps 2-3 do not apply)

Fitting (the mean in step 2, the principal axes in step 3) uses every item of the catalogue that
the input processed, not only training items: it reads content alone, never interactions, so it
leaks no labels, and cold items (seen only in validation/test) are then transformed by the same
map as the items they are ranked against. Items an input failed on take no part in its fit. The
PCA is deterministic: an eigen-decomposition of the float64 covariance, axes ordered by variance
(ties in index order) and each axis signed so that its largest-magnitude coordinate is positive.

Items an input failed on (listed in its manifest) are combined from the inputs that have them
(the "text-only" policy; in concat the missing block is zero) and listed as failed only if every
input failed. The manifest records `procedure`, `fit_on`, `common_dim`, `projection` and
`norm_share`: per input name, the mean over items of ||w_k z_k||^2 / sum_j ||w_j z_j||^2 (each
input's share of the fused vector's energy, cross terms left out; exactly w_k^2 / sum_j w_j^2
when every input has every item).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.features.featureset import FeatureSet
from vlmrec.linalg import l2_normalise

log = logging.getLogger(__name__)

FusionMethod = Literal["concat", "mean", "sum", "weighted", "align"]
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
PROCEDURE = (
    "per input: row L2 -> centre (mean over the items it processed) -> PCA to the common "
    "dimension where larger (mean/sum/weighted) -> row L2; then combine"
)
FIT_ON = "all items each input processed (content only, no interactions; failed items excluded)"
_CHUNK = 65536


def principal_axes(x: np.ndarray, dim: int) -> np.ndarray:
    """The top `dim` principal axes of the rows of `x` (already centred), as a (D, dim) matrix.

    Deterministic: eigen-decomposition of the float64 covariance (accumulated in row chunks, so
    memory is D x D however many items there are), axes by decreasing variance, each signed so
    that its largest-magnitude coordinate is positive.
    """
    d_in = x.shape[1]
    cov = np.zeros((d_in, d_in), dtype=np.float64)
    for start in range(0, len(x), _CHUNK):
        block = np.asarray(x[start : start + _CHUNK], dtype=np.float64)
        cov += block.T @ block
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(-values, kind="stable")[:dim]
    axes = vectors[:, order]
    pivot = np.argmax(np.abs(axes), axis=0)
    signs = np.sign(axes[pivot, np.arange(axes.shape[1])])
    signs[signs == 0] = 1.0
    return axes * signs


def _standardise(x: np.ndarray, ok: np.ndarray, dim: int | None) -> np.ndarray:
    """Steps 1-4 of the module docstring for one input; rows the input failed on are zero."""
    x = l2_normalise(x)
    fit = x[ok]
    mean = fit.mean(0) if len(fit) else np.zeros(x.shape[1], np.float32)
    centred = x - mean
    if dim is not None and dim < x.shape[1]:
        centred = centred @ principal_axes(centred[ok], dim).astype(np.float32)
    z = l2_normalise(centred)
    z[~ok] = 0.0
    return z


def _unique_names(inputs: Sequence[FeatureSet]) -> list[str]:
    names: list[str] = []
    for fs in inputs:
        name, n = fs.name, 1
        while name in names:
            n += 1
            name = f"{fs.name}#{n}"
        names.append(name)
    return names


def norm_shares(parts: Sequence[np.ndarray], weights: Sequence[float]) -> list[float]:
    """Per part: the mean over items of ||w_k z_k||^2 / sum_j ||w_j z_j||^2.

    Items where every part is zero are left out of the mean.
    """
    energy = np.stack([w**2 * np.sum(np.square(z, dtype=np.float64), axis=1) for z, w in zip(parts, weights)])
    total = energy.sum(0)
    keep = total > 1e-12
    if not keep.any():
        return [0.0] * len(parts)
    return [float(v) for v in (energy[:, keep] / total[keep]).mean(1)]


def _check_inputs(inputs: Sequence[FeatureSet], method: str) -> None:
    """A known method and at least two inputs made for the same dataset (same items, same
    fingerprint), or a ConfigError saying which."""
    if method not in FUSION_METHODS:
        raise ConfigError(f"fusion method {method!r}: choose one of {FUSION_METHODS}")
    if len(inputs) < 2:
        raise ConfigError("fusion needs at least two feature sets")
    n = inputs[0].vectors.shape[0]
    if any(fs.vectors.shape[0] != n for fs in inputs):
        raise ConfigError(
            "fusion inputs have different numbers of items; were they made for the same dataset?"
        )
    fps = {fs.manifest.get("dataset_fingerprint") for fs in inputs}
    if len(fps) > 1:
        raise ConfigError(
            f"fusion inputs come from different datasets (fingerprints {sorted(map(str, fps))})"
        )


def fuse(
    inputs: Sequence[FeatureSet],
    method: str,
    weights: Sequence[float] | None = None,
    dataset: Dataset | None = None,
    ridge: float = 1.0,
) -> FeatureSet:
    """Fuse feature sets of the same dataset into one (see the module docstring for the steps).

    `weights` is required for (and only read by) `weighted`; `dataset` and `ridge` only by
    `align`, which is fitted on the dataset's training items.
    """
    _check_inputs(inputs, method)
    n = inputs[0].vectors.shape[0]
    names = _unique_names(inputs)
    ok = np.ones((len(inputs), n), bool)
    for k, fs in enumerate(inputs):
        ok[k, fs.failed_items] = False
    extra: dict[str, Any] = {}
    if method == "align":
        out, parts, w, extra = _align(inputs, ok, dataset, ridge)
    else:
        if method == "weighted":
            if weights is None or len(weights) != len(inputs):
                raise ConfigError(f"weighted fusion needs {len(inputs)} weights (got {weights})")
            w = [float(v) for v in weights]
            if any(not np.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
                raise ConfigError(f"weighted fusion: weights must be >= 0 and not all 0 (got {w})")
            extra["weights"] = w
        else:
            w = [1.0] * len(inputs)
        dim = None if method == "concat" else min(fs.dim for fs in inputs)
        parts = [_standardise(np.asarray(fs.vectors), ok[k], dim) for k, fs in enumerate(inputs)]
        for name, z, has in zip(names, parts, ok):
            if has.any() and not np.any(z[has]):
                log.warning("fusion: input %r is the same for every item; it adds nothing", name)
        if method == "concat":
            out = np.hstack(parts)
        elif method == "sum":
            out = np.sum(parts, axis=0)
        else:
            out = _masked_mean(parts, ok, w)
        projected = [
            f"{name}: PCA {fs.dim} -> {dim}"
            for name, fs in zip(names, inputs)
            if dim is not None and fs.dim > dim
        ]
        if projected:
            extra["projection"] = "; ".join(projected)
        extra.update(procedure=PROCEDURE, fit_on=FIT_ON, common_dim=dim if dim is not None else None)
    extra["norm_share"] = dict(zip(names, norm_shares(parts, w)))
    failed = [{"item": int(i), "reason": "failed in every fused input"} for i in np.flatnonzero(~ok.any(0))]
    return inputs[0].derive(
        out.astype(np.float32),
        extractor=f"fusion-{method}",
        modality="fused",
        failed=failed,
        inputs=[
            {
                "name": name,
                "extractor": fs.manifest.get("extractor"),
                "model": fs.manifest.get("model"),
                "dim": fs.dim,
            }
            for name, fs in zip(names, inputs)
        ],
        model="+".join(str(fs.manifest.get("model")) for fs in inputs),
        **extra,
    )


def _align(
    inputs: Sequence[FeatureSet], ok: np.ndarray, dataset: Dataset | None, ridge: float
) -> tuple[np.ndarray, list[np.ndarray], list[float], dict[str, Any]]:
    """mean(text, W image) with W fitted by ridge least squares on training items."""
    if len(inputs) != 2:
        raise ConfigError("align takes exactly two inputs: TEXT,IMAGE (image is mapped into the text space)")
    if dataset is None:
        raise ConfigError("align needs the dataset (it is fitted on training items only)")
    text, image = (l2_normalise(np.asarray(fs.vectors)) for fs in inputs)
    n = len(text)
    fit = np.zeros(n, bool)
    fit[np.unique(dataset.train["item"].to_numpy())] = True
    fit &= ok[0] & ok[1]
    a, b = image[fit], text[fit]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1], dtype=np.float32), a.T @ b)
    mapped = l2_normalise(image @ w)
    parts = [np.where(ok[0][:, None], text, 0.0), np.where(ok[1][:, None], mapped, 0.0)]
    extra = {
        "align": {"fitted_on_items": int(fit.sum()), "ridge": ridge, "map": "image -> text, least squares"},
        "procedure": "text: row L2; image: row L2 -> ridge map into the text space -> row L2; then mean",
        "fit_on": "training items both inputs processed",
    }
    return _masked_mean([text, mapped], ok, [1.0, 1.0]), parts, [1.0, 1.0], extra


def _masked_mean(xs: list[np.ndarray], ok: np.ndarray, w: list[float]) -> np.ndarray:
    """Weighted mean over the inputs each item has (an item missing its image uses text only)."""
    num = sum(wk * np.where(ok[k][:, None], x, 0.0) for k, (x, wk) in enumerate(zip(xs, w)))
    den = sum(wk * ok[k] for k, wk in enumerate(w))
    return (num / np.maximum(den, 1e-12)[:, None]).astype(np.float32)
