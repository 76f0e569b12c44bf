"""DualGNN and SLMRec against their equations (dense float64 numpy re-derivations from the papers
and MMRec's code, with the model's own random weights copied out), their cold-item rule, and a
learning check on the six-community dataset."""

import numpy as np
import pytest
import torch

from tests.test_model_equations import (
    BATCH,
    N_USERS,
    bpr,
    built,
    lightgcn_norm,
    loss_of,
    params,
    scores_of,
    tiny,
)
from tests.test_models_mmgcn_grcn import (
    community_features,
    leaky,
    linear,
    mostpop_valid,
    normalise,
    small,
    valid_recall,
)
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model

__all__ = ["community_features", "mostpop_valid", "tiny"]  # fixtures shared with the other files


def renamed(ds, feats):
    """The image/text sets under names that sort text first (`bert` < `clip`)."""
    return {
        "clip": FeatureSet.create(feats["image"].vectors, ds, name="clip", modality="image"),
        "bert": FeatureSet.create(feats["text"].vectors, ds, name="bert", modality="text"),
    }


def assert_roles_follow_modality(name, ds, feats, **kw):
    """The model trained on `bert`/`clip` scores as on `image`/`text`: the image set takes the
    image role (MMRec's v) whatever the names."""
    fit = dict(epochs=2, lr=0.05, batch_size=8, device="cpu", **kw)
    want = create_model(name, **fit).fit(ds, feats, seed=0)
    got = create_model(name, **fit).fit(ds, renamed(ds, feats), seed=0)
    np.testing.assert_allclose(got.score(np.arange(N_USERS)), want.score(np.arange(N_USERS)), atol=1e-6)


@pytest.mark.parametrize("name", ["dualgnn", "slmrec"])
def test_modality_roles_follow_the_manifest_not_the_names(tiny, name):
    ds, _, feats = tiny
    assert_roles_follow_modality(name, ds, feats)


# ---- DualGNN -------------------------------------------------------------------------------
def true_neighbours(r, u):
    """User u's co-occurring users, by count descending then index, and their counts."""
    c = r @ r.T
    np.fill_diagonal(c, 0)
    order = sorted(np.flatnonzero(c[u]), key=lambda v: (-c[u, v], v))
    return np.array(order, dtype=int), c[u]


def check_user_graph(m, r, k):
    """The epoch's user graph: top-k co-occurring users (padded from the user's own list when
    it is shorter), weights softmax over their counts; returned dense."""
    idx = m.net.graph_index.numpy()
    w = m.net.graph_weight.double().numpy()
    g = np.zeros((N_USERS, N_USERS))
    for u in range(N_USERS):
        nbrs, counts = true_neighbours(r, u)
        if not len(nbrs):
            assert (w[u] == 0).all()
            continue
        n = min(len(nbrs), k)
        np.testing.assert_array_equal(idx[u, :n], nbrs[:n])
        assert set(idx[u, n:]) <= set(nbrs[:n])
        c = counts[idx[u]]
        np.testing.assert_allclose(w[u], np.exp(c - c.max()) / np.exp(c - c.max()).sum(), atol=1e-6)
        np.add.at(g[u], idx[u], w[u])
    return g


@pytest.mark.parametrize("fusion", ["reference", "weighted_sum"])
def test_dualgnn_equations(tiny, fusion):
    ds, r, _ = tiny
    rng = np.random.default_rng(5)
    feats = {
        "image": FeatureSet.create(rng.normal(size=(r.shape[1], 6)), ds, name="image", modality="image"),
        "text": FeatureSet.create(rng.normal(size=(r.shape[1], 5)), ds, name="text", modality="text"),
    }
    m = small(built("dualgnn", ds, feats, reg_weight=0.3, embedding_dim=4, user_k=8, user_fusion=fusion))
    p = params(m)
    g = check_user_graph(m, r, 8)
    a = lightgcn_norm(r)
    reps = []
    for k in range(2):
        z = linear(p, f"mlp_out.{k}", leaky(linear(p, f"mlp.{k}", p[f"feats.{k}"])))
        x = normalise(np.vstack([p[f"preference.{k}"], z]))
        reps.append(x + a @ x + a @ (a @ x))
    ei = (reps[0] + reps[1])[N_USERS:]
    w = p["weight_u"]
    r0, r1 = reps[0][:N_USERS], reps[1][:N_USERS]
    user = w[:, :1] * (r0 + r1) + w[:, 1:] * r1 if fusion == "reference" else w[:, :1] * r0 + w[:, 1:] * r1
    eu = user + g @ user
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1)) / np.log(2)  # MMRec's log2
    ref += 0.3 * ((p["preference.0"][u] ** 2).mean() + (p["preference.1"][u] ** 2).mean() + (w**2).mean())
    m._graph = m._user_graph()
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_dualgnn_user_graph_uses_training_interactions_only(tiny):
    """Validation/test interactions never create a user-user edge."""
    from vlmrec.models.dualgnn import user_cooccurrence_topk

    ds, r, _ = tiny
    nbr, cnt, n = user_cooccurrence_topk(ds.matrix("train"), 20)
    for u in range(N_USERS):
        nbrs, counts = true_neighbours(r, u)
        assert n[u] == len(nbrs)
        np.testing.assert_array_equal(nbr[u, : n[u]], nbrs)
        np.testing.assert_array_equal(cnt[u, : n[u]], counts[nbrs])
    # blocks of one user give the same graph
    small_blocks = user_cooccurrence_topk(ds.matrix("train"), 20, budget=1)
    for got, want in zip(small_blocks, (nbr, cnt, n)):
        np.testing.assert_array_equal(got, want)


def dualgnn_content_only(p, item):
    """An item without edges, from its content alone: sum_m N(MLP_m(f_m,i)) (no neighbours, so no
    propagated terms; no ID embedding)."""
    rows = []
    for k in range(2):
        z = linear(p, f"mlp_out.{k}", leaky(linear(p, f"mlp.{k}", p[f"feats.{k}"][item : item + 1])))
        rows.append(normalise(z)[0])
    return rows[0] + rows[1]


def test_dualgnn_cold_item_is_scored_by_its_content(tiny):
    ds, _, feats = tiny
    m = built("dualgnn", ds, feats)
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[13], dualgnn_content_only(params(m), 13), atol=1e-6)
    cold = m.item_factors_[13].copy()
    with torch.no_grad():
        m.net.feats[0][13] += 1.0  # its content moves, its score follows
    m._export(cold_rule=True)
    assert not np.allclose(m.item_factors_[13], cold)
    np.testing.assert_allclose(m.item_factors_[13], dualgnn_content_only(params(m), 13), atol=1e-6)


# ---- SLMRec --------------------------------------------------------------------------------
def cross_entropy_diag(logits):
    logits = logits - logits.max(1, keepdims=True)
    return np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))


def test_slmrec_features_are_l2_normalised_and_frozen(tiny):
    ds, _, feats = tiny
    m = create_model("slmrec", epochs=2, lr=0.05, batch_size=8, device="cpu").fit(ds, feats, seed=0)
    for k, name in enumerate(("image", "text")):
        np.testing.assert_allclose(m.net.feats[k].numpy(), normalise(feats[name].vectors), atol=1e-6)


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_slmrec_equations(tiny, wd):
    ds, r, feats = tiny
    m = small(
        built("slmrec", ds, feats, embedding_dim=6, ssl_alpha=0.7, temp=0.3, ssl_temp=0.4, weight_decay=wd)
    )
    p = params(m)
    a = lightgcn_norm(r)

    def lg(items):
        e = np.vstack([p["user"], items])
        out = e.copy()
        for _ in range(3):
            e = a @ e
            out = out + e
        out /= 4
        return out[:N_USERS], out[N_USERS:]

    parts = [lg(p["item"])] + [lg(linear(p, f"dense.{k}", p[f"feats.{k}"])) for k in range(2)]
    eu = linear(p, "fuse_user", np.hstack([pu for pu, _ in parts]))
    ei = linear(p, "fuse_item", np.hstack([pi for _, pi in parts]))
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, _ = BATCH
    ref = cross_entropy_diag(normalise(eu[u]) @ normalise(ei[i]).T / 0.3)
    # FAC as MMRec: g_i_iv/g_v_iv, then g_iv_iva -> g_iva_ivat against g_t_ivat
    s = linear(p, "head_id", parts[0][1][i])
    ssl = cross_entropy_diag(s @ linear(p, "head.0", parts[1][1][i]).T / 0.4)
    s = linear(p, "chain_b.0", linear(p, "chain_a.0", s))
    ssl += cross_entropy_diag(s @ linear(p, "head.1", parts[2][1][i]).T / 0.4)
    ref += 0.7 * ssl
    ref += wd / 2 * sum((v**2).sum() for k, v in p.items() if not k.startswith("feats"))
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_slmrec_cold_item_has_no_id_part(tiny):
    ds, _, feats = tiny
    m = built("slmrec", ds, feats)
    m._export()
    raw = m.item_factors_.copy()
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[:13], raw[:13], atol=1e-6)  # warm items unchanged
    with torch.no_grad():
        m.net.item[13] += 3.0  # its untrained ID row no longer matters
    m._export(cold_rule=True)
    cold = m.item_factors_[13].copy()
    m._export()
    assert not np.allclose(m.item_factors_[13], cold)
    with torch.no_grad():
        m.net.item[13] -= 3.0
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[13], cold, atol=1e-6)


LEARN = {
    "dualgnn": {"epochs": 10, "lr": 0.01, "batch_size": 256},
    "slmrec": {"epochs": 10, "lr": 0.01, "batch_size": 256},
}


@pytest.mark.parametrize("name", list(LEARN))
def test_learns_beyond_mostpop(name, multi_community_dataset, community_features, mostpop_valid):
    ds = multi_community_dataset
    m = create_model(name, device="cpu", **LEARN[name]).fit(ds, community_features, seed=0)
    assert valid_recall(ds, m) > mostpop_valid + 0.05, (name, valid_recall(ds, m), mostpop_valid)
