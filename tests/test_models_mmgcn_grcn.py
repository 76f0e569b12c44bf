"""MMGCN and GRCN against their equations (dense float64 numpy re-derivations from the papers and
MMRec's code, with the model's own random weights copied out), their cold-item rule, and a
learning check on the six-community dataset."""

import numpy as np
import pytest
import torch

from tests.test_model_equations import BATCH, N_USERS, bpr, built, loss_of, params, scores_of, tiny
from vlmrec.evaluation import Evaluator
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model

__all__ = ["tiny"]  # the 9 x 14 fixture (item 13 is cold), shared with test_model_equations


def leaky(x):
    return np.where(x > 0, x, 0.01 * x)


def normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def bipartite(r):
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:] = r
    a[n_u:, :n_u] = r.T
    return a


def small(m, factor=0.3):
    """`m` with every parameter scaled by `factor` (after `built`'s random values: deep
    propagation would otherwise give scores in the thousands, where float32 keeps 4 decimals)."""
    with torch.no_grad():
        for q in m.net.parameters():
            q.mul_(factor)
    m._export()
    return m


def linear(p, name, x):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


# ---- MMGCN ---------------------------------------------------------------------------------
def mmgcn_reference(r, feats, p, n_layers, combine, image):
    """MMRec's MMGCN forward, dense: the mean over modalities of the last layer's output."""
    a = bipartite(r)
    deg = a.sum(1)
    a_mean = np.divide(a, deg[:, None], out=np.zeros_like(a), where=deg[:, None] > 0)
    e = p["id_embedding"]
    reps = []
    for m, name in enumerate(("image", "text")):  # name order
        f = feats[name]
        if image[m]:
            f = linear(p, f"gcns.{m}.mlp", f)
        x = normalise(np.vstack([p[f"gcns.{m}.preference"], f]))
        for layer in range(n_layers):
            h = leaky(a_mean @ (x @ p[f"gcns.{m}.conv.{layer}"]))
            x_hat = leaky(linear(p, f"gcns.{m}.linear.{layer}", x)) + e
            if combine == "concat":
                x = leaky(linear(p, f"gcns.{m}.g.{layer}", np.hstack([h, x_hat])))
            else:
                x = leaky(linear(p, f"gcns.{m}.g.{layer}", h) + x_hat)
        reps.append(x)
    return np.mean(reps, 0)


@pytest.mark.parametrize("combine", ["concat", "add"])
def test_mmgcn_equations(tiny, combine):
    ds, r, feats = tiny
    m = small(built("mmgcn", ds, feats, reg_weight=0.3, latent_dim_image=7, n_layers=3, combine=combine))
    p = params(m)
    f = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    rep = mmgcn_reference(r, f, p, 3, combine, image=[True, False])
    ru, ri = rep[:N_USERS], rep[N_USERS:]
    np.testing.assert_allclose(scores_of(m), ru @ ri.T, atol=1e-5)
    u, i, j = BATCH
    e = p["id_embedding"]
    ref = bpr((ru[u] * ri[i]).sum(1), (ru[u] * ri[j]).sum(1))
    # MMRec: (E[users twice]^2 + E[pos, neg interleaved]^2).mean() + (P_image^2).mean()
    users2, items2 = np.repeat(u, 2), N_USERS + np.stack([i, j], 1).reshape(-1)
    reg = (e[users2] ** 2 + e[items2] ** 2).mean() + (p["gcns.0.preference"] ** 2).mean()
    assert loss_of(m) == pytest.approx(ref + 0.3 * reg, abs=1e-5)


def test_mmgcn_embeddings_stay_at_their_init_as_in_the_reference(tiny):
    ds, _, feats = tiny
    kw = {"epochs": 2, "lr": 0.05, "batch_size": 8, "device": "cpu"}
    frozen = create_model("mmgcn", **kw).fit(ds, feats, seed=0)
    again = create_model("mmgcn", **kw, train_embeddings=True)
    again.fit(ds, feats, seed=0)
    assert not frozen.net.id_embedding.requires_grad and not frozen.net.gcns[0].preference.requires_grad
    assert again.net.id_embedding.requires_grad
    # same seed, same initial values: only the trained copy moved
    init = create_model("mmgcn", **{**kw, "epochs": 1, "lr": 1e-12}).fit(ds, feats, seed=0)
    np.testing.assert_allclose(frozen.net.id_embedding.detach(), init.net.id_embedding.detach(), atol=1e-6)
    assert not np.allclose(again.net.id_embedding.detach(), init.net.id_embedding.detach(), atol=1e-4)


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_mmgcn_reg_weight_is_inert_unless_the_embeddings_train(tiny, train_embeddings):
    """reg_weight only weighs E and P_m: frozen (the reference), it adds a constant to the loss and
    the trained model is the same; trained, it changes the scores. (Hence no reg_weight axis in
    the zoo's MMGCN grid, and the parameter's description says so.)"""
    from vlmrec.models.mmgcn import MMGCN
    from vlmrec.models.params import param_spec

    ds, _, feats = tiny
    kw = {"epochs": 3, "lr": 0.05, "batch_size": 8, "device": "cpu", "train_embeddings": train_embeddings}
    scores = [
        create_model("mmgcn", reg_weight=reg, **kw).fit(ds, feats, seed=0).score(np.arange(N_USERS))
        for reg in (0.0, 1.0)
    ]
    if train_embeddings:
        assert np.abs(scores[0] - scores[1]).max() > 1e-3
    else:
        np.testing.assert_array_equal(scores[0], scores[1])
        assert "inert" in (param_spec(MMGCN).model_fields["reg_weight"].description or "")


def test_mmgcn_cold_item_is_scored_by_its_content_path(tiny):
    """Item 13 has no training edge: its ID row is zeroed at scoring, its score comes from its
    features alone (changing its features changes it, changing its ID row does not)."""
    ds, _, feats = tiny
    m = built("mmgcn", ds, feats)
    m._export(cold_rule=True)
    before = m.item_factors_[13].copy()
    with torch.no_grad():
        m.net.id_embedding[N_USERS + 13] += 5.0
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[13], before, atol=1e-6)
    m._export()
    assert not np.allclose(m.item_factors_[13], before)  # the raw export uses the ID row


# ---- learning on six communities -------------------------------------------------------------
@pytest.fixture(scope="module")
def community_features(multi_community_dataset):
    ds = multi_community_dataset
    comm = np.array(ds.info["item_community"])
    rng = np.random.default_rng(0)
    feats = {}
    for name, dim, modality in (("text", 8, "text"), ("image", 10, "image")):
        x = rng.normal(scale=0.3, size=(ds.n_items, dim))
        x[np.arange(ds.n_items), comm] += 1.0
        feats[name] = FeatureSet.create(
            x, ds, extractor=name, model="synthetic", name=name, modality=modality
        )
    return feats


def valid_recall(ds, model):
    return Evaluator(ds, "valid", ks=[20], metrics=["recall"]).evaluate(model).mean("recall", 20)


@pytest.fixture(scope="module")
def mostpop_valid(multi_community_dataset):
    return valid_recall(multi_community_dataset, create_model("mostpop").fit(multi_community_dataset))


LEARN = {
    "mmgcn": {"epochs": 15, "lr": 0.01, "batch_size": 256, "latent_dim_image": 32},
    "grcn": {"epochs": 10, "lr": 0.01, "batch_size": 256},
}


@pytest.mark.parametrize("name", list(LEARN))
def test_learns_beyond_mostpop(name, multi_community_dataset, community_features, mostpop_valid):
    ds = multi_community_dataset
    m = create_model(name, device="cpu", **LEARN[name]).fit(ds, community_features, seed=0)
    assert valid_recall(ds, m) > mostpop_valid + 0.05, (name, valid_recall(ds, m), mostpop_valid)


# ---- GRCN ----------------------------------------------------------------------------------
def masked_softmax(s, mask):
    """Row softmax of s over the entries where mask is true (0 elsewhere)."""
    s = np.where(mask, s, -np.inf)
    top = np.max(np.where(mask, s, -1e300), axis=1, keepdims=True)
    ex = np.where(mask, np.exp(s - top), 0.0)
    return ex / np.maximum(ex.sum(1, keepdims=True), 1e-300)


def grcn_reference(r, p, n_routing, routing, image):
    """MMRec's GRCN forward (weight_mode confid, pruning, concat fusion), dense."""
    a = bipartite(r) > 0
    n_u = r.shape[0]
    contents, alphas = [], []
    for m in range(2):
        items = normalise(leaky(linear(p, f"mlp.{m}", p[f"feats.{m}"])))
        pref = normalise(p[f"preference.{m}"])
        for _ in range(n_routing):
            if routing == "item_to_user":
                att = masked_softmax(pref @ items.T, r > 0)
                pref = pref + att @ items
            pref = normalise(pref)
        x = np.vstack([pref, items])
        att = masked_softmax(x @ x.T, a)  # att[t, j]: t's attention on its neighbour j
        contents.append(x + att @ x)
        alphas.append(att)
    conf = p["confidence"]
    # w(j -> t) = relu(max_m att_m[t, j] * conf[j, m])
    w = np.maximum(np.maximum(alphas[0] * conf[None, :, 0], alphas[1] * conf[None, :, 1]), 0) * a
    x = normalise(p["id_embedding"])
    x1 = w @ x
    x2 = w @ x1
    rep = np.hstack([x + x1 + x2] + contents)
    return rep[:n_u], rep[n_u:]


@pytest.mark.parametrize("routing", ["user_to_item", "item_to_user"])
def test_grcn_equations(tiny, routing):
    ds, r, feats = tiny
    m = small(built("grcn", ds, feats, reg_weight=0.3, latent_dim=5, embedding_dim=6, routing=routing))
    p = params(m)
    ru, ri = grcn_reference(r, p, 3, routing, image=[True, False])
    np.testing.assert_allclose(scores_of(m), ru @ ri.T, atol=1e-5)
    u, i, j = BATCH
    e = p["id_embedding"]
    ref = bpr((ru[u] * ri[i]).sum(1), (ru[u] * ri[j]).sum(1))
    users2, items2 = np.repeat(u, 2), N_USERS + np.stack([i, j], 1).reshape(-1)
    reg = (e[users2] ** 2 + e[items2] ** 2).mean() + (p["preference.0"] ** 2).mean()
    reg += (p["preference.0"][users2] ** 2).mean() + (p["preference.1"][users2] ** 2).mean()
    assert loss_of(m) == pytest.approx(ref + 0.3 * reg, abs=1e-5)


def test_grcn_reference_routing_leaves_preferences_unrouted(tiny):
    """MMRec's user -> item routing edges give users nothing: any number of rounds scores alike."""
    ds, _, feats = tiny
    a = small(built("grcn", ds, feats, n_routing=0))
    b = small(built("grcn", ds, feats, n_routing=3))
    np.testing.assert_allclose(scores_of(a), scores_of(b), atol=1e-5)
    c = small(built("grcn", ds, feats, n_routing=3, routing="item_to_user"))
    assert not np.allclose(scores_of(a), scores_of(c), atol=1e-3)


def test_grcn_cold_item_has_no_id_part(tiny):
    ds, _, feats = tiny
    m = built("grcn", ds, feats)
    m._export()
    raw = m.item_factors_.copy()
    m._export(cold_rule=True)
    np.testing.assert_array_equal(m.item_factors_[13, : m.embedding_dim], 0)
    np.testing.assert_allclose(m.item_factors_[13, m.embedding_dim :], raw[13, m.embedding_dim :], atol=1e-6)
    np.testing.assert_allclose(m.item_factors_[:13], raw[:13], atol=1e-6)  # warm items unchanged
    assert np.abs(raw[13, : m.embedding_dim]).sum() > 0
