"""Content controls: feature sets that keep the statistics of real features but break their link
to the items. If a model scores the same with them, it is not using the content.

  shuffled  rows permuted (same marginal distribution, item alignment broken)
  random    Gaussian draws with the real features' mean and covariance
  zero      all zeros (content removed entirely)
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from vlmrec.errors import ConfigError
from vlmrec.features.featureset import FeatureSet

ControlKind = Literal["shuffled", "random", "zero"]
CONTROL_KINDS: tuple[str, ...] = get_args(ControlKind)


def make_control(fs: FeatureSet, kind: str, seed: int = 0) -> FeatureSet:
    if kind not in CONTROL_KINDS:
        raise ConfigError(f"control kind {kind!r}: choose one of {CONTROL_KINDS}")
    x = np.asarray(fs.vectors, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if kind == "shuffled":
        perm = rng.permutation(len(x))
        out = x[perm]
    elif kind == "random":
        mu = x.mean(0)
        centred = x - mu
        # cov = V S^2 V^T / (n-1): sample z @ (S V^T)/sqrt(n-1), exact also when dim > n
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        z = rng.standard_normal((len(x), len(s)))
        out = mu + (z * (s / np.sqrt(max(len(x) - 1, 1)))) @ vt
    else:
        out = np.zeros_like(x)
    return fs.derive(
        out.astype(np.float32),
        extractor=f"control-{kind}",
        control=kind,
        control_seed=seed,
        control_of=fs.name,
        modality=fs.manifest.get("modality"),
        model=fs.manifest.get("model"),
        name=f"{fs.name}~{kind}",
        failed=[],
    )
