"""Fusion of feature sets into one (Pomo et al.'s early-fusion baselines).

All methods L2-normalise each input first, so no modality wins by scale alone.
  concat   [x_1 | x_2 | ...]
  mean     (1/K) sum_k P_k x_k     P_k: PCA to the smallest input dimension when dims differ
  sum      sum_k P_k x_k
  weighted sum_k w_k P_k x_k
  align    mean(x_text, W x_image): W the ridge least-squares map from the image space into the
           text space, fitted on items seen in training only (no test leakage)
Items an input failed on (listed in its manifest) are averaged over the inputs that have them
(the "text-only" policy) in mean/weighted/align, and listed as failed only if every input failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.features.featureset import FeatureSet

FUSION_METHODS = ("concat", "mean", "sum", "weighted", "align")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def pca_project(x: np.ndarray, dim: int) -> np.ndarray:
    """Project onto the top `dim` principal components (deterministic SVD sign convention)."""
    if x.shape[1] == dim:
        return x
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:dim]
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    comps = vt * signs[:, None]
    out = centred @ comps.T
    if out.shape[1] < dim:  # fewer items than dims: pad with zeros, keeping the dim promise
        out = np.hstack([out, np.zeros((len(out), dim - out.shape[1]), out.dtype)])
    return out.astype(np.float32)


def fuse(
    inputs: Sequence[FeatureSet],
    method: str,
    weights: Sequence[float] | None = None,
    dataset: Dataset | None = None,
    ridge: float = 1.0,
) -> FeatureSet:
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
    xs = [l2_normalise(np.asarray(fs.vectors)) for fs in inputs]
    ok = np.ones((len(inputs), n), bool)
    for k, fs in enumerate(inputs):
        ok[k, fs.failed_items] = False
    extra: dict = {}
    if method == "concat":
        out = np.hstack(xs)
    elif method == "align":
        if len(inputs) != 2:
            raise ConfigError(
                "align takes exactly two inputs: TEXT,IMAGE (image is mapped into the text space)"
            )
        if dataset is None:
            raise ConfigError("align needs the dataset (it is fitted on training items only)")
        text, image = xs
        fit = np.zeros(n, bool)
        fit[np.unique(dataset.train["item"].to_numpy())] = True
        fit &= ok[0] & ok[1]
        a, b = image[fit], text[fit]
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1], dtype=np.float32), a.T @ b)
        mapped = l2_normalise(image @ w)
        out = _masked_mean([text, mapped], ok, [1.0, 1.0])
        extra = {
            "align": {
                "fitted_on_items": int(fit.sum()),
                "ridge": ridge,
                "map": "image -> text, least squares",
            }
        }
    else:
        dim = min(x.shape[1] for x in xs)
        xs = [pca_project(x, dim) for x in xs]
        if any(x.shape[1] != inputs[k].dim for k, x in enumerate(xs)):
            extra = {"projection": f"PCA to {dim} dims"}
        if method == "weighted":
            if weights is None or len(weights) != len(inputs):
                raise ConfigError(f"weighted fusion needs {len(inputs)} weights (got {weights})")
            w = list(map(float, weights))
        else:
            w = [1.0] * len(inputs)
        out = _masked_mean(xs, ok, w) if method != "sum" else sum(xs)
        if method == "weighted":
            extra["weights"] = w
    failed = [{"item": int(i), "reason": "failed in every fused input"} for i in np.flatnonzero(~ok.any(0))]
    return inputs[0].derive(
        out.astype(np.float32),
        extractor=f"fusion-{method}",
        modality="fused",
        failed=failed,
        inputs=[
            {
                "name": fs.name,
                "extractor": fs.manifest.get("extractor"),
                "model": fs.manifest.get("model"),
                "dim": fs.dim,
            }
            for fs in inputs
        ],
        model="+".join(str(fs.manifest.get("model")) for fs in inputs),
        **extra,
    )


def _masked_mean(xs: list[np.ndarray], ok: np.ndarray, w: list[float]) -> np.ndarray:
    """Weighted mean over the inputs each item has (an item missing its image uses text only)."""
    num = sum(wk * np.where(ok[k][:, None], x, 0.0) for k, (x, wk) in enumerate(zip(xs, w)))
    den = sum(wk * ok[k] for k, wk in enumerate(w))
    return (num / np.maximum(den, 1e-12)[:, None]).astype(np.float32)
