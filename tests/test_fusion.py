"""Fusion puts every input on the same footing (issue 11, "Fusion").

Procedure under test: each input is row-L2-normalised, centred on the items it processed,
PCA-projected to the common (smallest) dimension where it is larger (mean/sum/weighted only),
row-L2-normalised again, then combined.
"""

import numpy as np
import pytest

from vlmrec.errors import ConfigError
from vlmrec.features.combine.fusion import fuse
from vlmrec.features.featureset import FeatureSet


def _fs(x: np.ndarray, name: str, failed: list[int] | None = None) -> FeatureSet:
    manifest = {"name": name, "extractor": name, "model": name}
    if failed:
        manifest["failed"] = [{"item": i, "reason": "test"} for i in failed]
    return FeatureSet(np.asarray(x, dtype=np.float32), manifest)


def _two_modalities(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small-dim input with no offset, a large-dim one with a big offset and a huge scale."""
    rng = np.random.default_rng(seed)
    small = rng.normal(size=(n, 8))
    big = 1000.0 * (rng.normal(size=(n, 64)) + 4.0)
    return small, big


def _measured_shares(small: np.ndarray, big: np.ndarray, method: str) -> tuple[float, float]:
    """Each input's influence on the fused vectors, measured from the outputs alone.

    Fusion is additive over inputs and its fitted centring/PCA do not depend on row order, so
    replacing one input by a row-shuffled copy changes the output by exactly that input's part
    (shuffled); the energy of the change is twice that part's energy for centred parts.
    """
    perm = np.random.default_rng(1).permutation(len(small))
    f = fuse([_fs(small, "s"), _fs(big, "b")], method).vectors
    f_small = fuse([_fs(small[perm], "s"), _fs(big, "b")], method).vectors
    f_big = fuse([_fs(small, "s"), _fs(big[perm], "b")], method).vectors
    e_small = float(np.sum((f - f_small) ** 2))
    e_big = float(np.sum((f - f_big) ** 2))
    return e_small / (e_small + e_big), e_big / (e_small + e_big)


@pytest.mark.parametrize("method", ["mean", "sum"])
def test_each_modality_carries_half_of_a_two_input_fusion(method):
    """Fails on the old code: the smaller input stayed uncentred with norm 1 while the larger
    became a centred PCA projection of norm ~0.3, so the smaller modality dominated."""
    small, big = _two_modalities()
    s_small, s_big = _measured_shares(small, big, method)
    assert abs(s_small - 0.5) < 0.1 and abs(s_big - 0.5) < 0.1, (s_small, s_big)
    out = fuse([_fs(small, "s"), _fs(big, "b")], method)
    assert set(out.manifest["norm_share"]) == {"s", "b"}
    assert out.manifest["norm_share"]["s"] == pytest.approx(0.5, abs=1e-6)


def test_concat_blocks_are_centred_unit_rows_whatever_the_scale():
    small, big = _two_modalities()
    out = fuse([_fs(small, "s"), _fs(big, "b")], "concat")
    assert out.dim == 8 + 64
    for block in (out.vectors[:, :8], out.vectors[:, 8:]):
        assert np.allclose(np.linalg.norm(block, axis=1), 1.0, atol=1e-5)
    # the big input's offset is removed before normalising: its block is centred (mean ~ 0)
    assert np.abs(out.vectors[:, 8:].mean(0)).max() < 0.05
    # scale does not matter at all
    again = fuse([_fs(small * 1e-3, "s"), _fs(big * 7.0, "b")], "concat")
    assert np.allclose(out.vectors, again.vectors, atol=1e-5)
    assert out.manifest["norm_share"] == pytest.approx({"s": 0.5, "b": 0.5})


def _hand_inputs() -> tuple[np.ndarray, np.ndarray]:
    # A (2-d): four unit diagonals, already centred, scaled by 100 (scale must not matter)
    a = 100.0 * np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=float)
    # B (3-d): rows of norm 5 (so the first L2 step divides by 5)
    b = np.array([[4, 0, 3], [0, 3, 4], [-4, 0, 3], [0, -3, 4]], dtype=float)
    return a, b


def test_hand_checked_mean_and_weighted_fusion():
    """By hand. A: L2 -> [±1, ±1]/sqrt(2); its mean is 0 so centring leaves it; norm 1.
    B: L2 -> [.8,0,.6], [0,.6,.8], [-.8,0,.6], [0,-.6,.8]; mean [0,0,.7]; centred
    [.8,0,-.1], [0,.6,.1], [-.8,0,-.1], [0,-.6,.1]. Its covariance is diagonal with variances
    x .32 > y .18 > z .005, so PCA to 2 dims keeps (x, y) with + signs: [.8,0], [0,.6], [-.8,0],
    [0,-.6]; L2 -> [1,0], [0,1], [-1,0], [0,-1]."""
    a, b = _hand_inputs()
    r = 1 / np.sqrt(2)
    za = np.array([[r, r], [r, -r], [-r, -r], [-r, r]])
    zb = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    m = fuse([_fs(a, "A"), _fs(b, "B")], "mean")
    assert np.allclose(m.vectors, (za + zb) / 2, atol=1e-6)
    assert m.manifest["norm_share"] == pytest.approx({"A": 0.5, "B": 0.5})
    s = fuse([_fs(a, "A"), _fs(b, "B")], "sum")
    assert np.allclose(s.vectors, za + zb, atol=1e-6)
    w = fuse([_fs(a, "A"), _fs(b, "B")], "weighted", [1.0, 3.0])
    assert np.allclose(w.vectors, (1 * za + 3 * zb) / 4, atol=1e-6)
    # share of the norm: |1 za|^2 = 1 against |3 zb|^2 = 9
    assert w.manifest["norm_share"] == pytest.approx({"A": 0.1, "B": 0.9})
    assert w.manifest["weights"] == [1.0, 3.0]
    assert "PCA" in w.manifest["projection"] and "B" in w.manifest["projection"]


def test_manifest_records_the_procedure_and_a_share_per_input():
    a, b = _hand_inputs()
    out = fuse([_fs(a, "text"), _fs(b, "image")], "mean")
    man = out.manifest
    assert set(man["norm_share"]) == {"text", "image"}
    assert sum(man["norm_share"].values()) == pytest.approx(1.0)
    assert "centre" in man["procedure"] and "L2" in man["procedure"]
    assert man["fit_on"].startswith("all items")
    assert man["common_dim"] == 2
    # the same feature set fused with itself: names are made unique, not merged
    twice = fuse([_fs(a, "text"), _fs(a, "text")], "mean")
    assert set(twice.manifest["norm_share"]) == {"text", "text#2"}


def test_failed_items_use_the_inputs_they_have_and_do_not_shape_the_fit():
    a, b = _hand_inputs()
    a5 = np.vstack([a, [[100.0, 100.0]]])
    junk1 = np.vstack([b, [[1e6, -1e6, 5e5]]])  # item 4: a placeholder row the image input failed on
    junk2 = np.vstack([b, [[0.0, 0.0, 0.0]]])
    out = fuse([_fs(a5, "A"), _fs(junk1, "B", failed=[4])], "mean")
    # the failed row takes no part in B's centring or PCA: any placeholder gives the same output
    assert np.allclose(out.vectors, fuse([_fs(a5, "A"), _fs(junk2, "B", failed=[4])], "mean").vectors)
    assert np.allclose(np.linalg.norm(out.vectors[4]), 1.0, atol=1e-6)  # item 4: A alone, a unit row
    assert out.manifest["failed"] == []
    s = fuse([_fs(a5, "A"), _fs(junk1, "B", failed=[4])], "sum")
    assert np.allclose(s.vectors[4], out.vectors[4], atol=1e-6)  # sum: B contributes nothing
    c = fuse([_fs(a5, "A"), _fs(junk1, "B", failed=[4])], "concat")
    assert np.allclose(c.vectors[4, 2:], 0.0)  # concat: B's block of a failed item is zero
    both = fuse([_fs(a5, "A", failed=[4]), _fs(junk1, "B", failed=[4])], "mean")
    assert [f["item"] for f in both.manifest["failed"]] == [4]


def test_fusion_is_deterministic_and_row_order_equivariant():
    small, big = _two_modalities(n=120, seed=3)
    one = fuse([_fs(small, "s"), _fs(big, "b")], "mean").vectors
    assert np.array_equal(one, fuse([_fs(small, "s"), _fs(big, "b")], "mean").vectors)
    perm = np.random.default_rng(4).permutation(len(small))
    shuffled = fuse([_fs(small[perm], "s"), _fs(big[perm], "b")], "mean").vectors
    assert np.allclose(shuffled, one[perm], atol=1e-5)


def test_weighted_fusion_needs_one_weight_per_input():
    a, b = _hand_inputs()
    with pytest.raises(ConfigError, match="2 weights"):
        fuse([_fs(a, "A"), _fs(b, "B")], "weighted", [1.0])
