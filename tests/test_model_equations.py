"""Each reference model against its reference equations, re-derived here in dense float64 numpy
from the papers and the reference code (enoche/MMRec), not from vlmrec: with identical weights,
scores and the loss on a fixed batch agree to 1e-5.

Every parameter is overwritten with seeded random values first, so biases and trained features
take part (zero-initialised terms would hide mistakes).
"""

import numpy as np
import pandas as pd
import pytest
import torch

from vlmrec.data.dataset import build_dataset
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import TrainingParams, create_model

N_USERS, N_ITEMS = 9, 14
BATCH = (
    np.array([0, 1, 2, 3, 4, 5, 6, 8]),
    np.array([1, 0, 5, 3, 2, 9, 4, 7]),
    np.array([6, 12, 2, 8, 11, 3, 10, 13]),
)


@pytest.fixture(scope="module")
def tiny():
    """9 users x 14 items; item 13 never appears in training (a cold item)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS):
        for i in rng.choice(13, size=4, replace=False):
            rows.append((f"u{u}", f"i{i:02d}"))
    train = pd.DataFrame(rows, columns=["user_id", "item_id"])
    test = pd.DataFrame({"user_id": ["u0"], "item_id": ["i13"]})
    valid = pd.DataFrame({"user_id": ["u1"], "item_id": ["i13"]})
    ds = build_dataset("tiny", train, valid, test)
    assert ds.n_users == N_USERS and ds.n_items == N_ITEMS
    r = ds.matrix("train").toarray().astype(np.float64)
    feats = {
        "image": FeatureSet.create(rng.normal(size=(N_ITEMS, 6)), ds, name="image", modality="image"),
        "text": FeatureSet.create(rng.normal(size=(N_ITEMS, 5)) + 0.5, ds, name="text", modality="text"),
    }
    return ds, r, feats


def built(name, ds, feats, **params):
    """The model after set-up (and one epoch of training), then every
    parameter replaced by seeded random values."""
    m = create_model(name, epochs=1, device="cpu", **params).fit(ds, feats, seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    m._export()
    return m


def params(m):
    return {k: v.detach().double().numpy() for k, v in m.net.named_parameters()}


def loss_of(m, **state):
    for k, v in state.items():
        setattr(m, k, v)
    u, i, j = (torch.as_tensor(a) for a in BATCH)
    with torch.no_grad():
        return float(m._batch_loss(u, i, j))


# ---- the reference equations, dense numpy --------------------------------------------------
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def bpr(pos, neg):
    """MMRec's BPRLoss."""
    return -np.mean(np.log(1e-10 + sigmoid(pos - neg)))


def emb_loss(*ts):
    """MMRec's EmbLoss: sum of Frobenius norms / rows of the last."""
    return sum(np.linalg.norm(t) for t in ts) / ts[-1].shape[0]


def cos_rows(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def bipartite(r):
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:] = r
    a[n_u:, :n_u] = r.T
    return a


def lightgcn_norm(r):
    """LightGCN/MMRec: D^-1/2 A D^-1/2, D from (A > 0) row sums + 1e-7."""
    a = bipartite(r)
    d = ((a > 0).sum(1) + 1e-7) ** -0.5
    return d[:, None] * a * d[None, :]


def layer_mean(adj, e0, n_layers):
    out, e = [e0], e0
    for _ in range(n_layers):
        e = adj @ e
        out.append(e)
    return np.mean(out, 0)


def knn_dense(x, k, weighted):
    """Top-k cosine neighbours per row (the item itself included), as build_knn_neighbourhood."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    out = np.zeros_like(sim)
    for i in range(len(sim)):
        top = np.argsort(-sim[i])[:k]
        out[i, top] = sim[i, top] if weighted else 1.0
    return out


def laplacian(s, eps=0.0):
    """compute_normalized_laplacian: D^-1/2 S D^-1/2 with D the row sums."""
    d = (s.sum(1) + eps) ** -0.5
    return d[:, None] * s * d[None, :]


def scores_of(m):
    return m.score(np.arange(N_USERS)).astype(np.float64)


# ---- the six models ------------------------------------------------------------------------
def test_bprmf_equations(tiny):
    ds, r, _ = tiny
    m = built("bprmf", ds, None, reg=0.3)
    p = params(m)
    U, V = p["user.weight"], p["item.weight"]
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), U @ V.T, atol=1e-5)
    ref = bpr((U[u] * V[i]).sum(1), (U[u] * V[j]).sum(1)) + 0.3 * emb_loss(U[u], V[i], V[j])
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_bprmf_item_bias_equations(tiny):
    ds, r, _ = tiny
    m = built("bprmf", ds, None, reg=0.3, item_bias=True)
    p = params(m)
    U, V, b = p["user.weight"], p["item.weight"], p["bias.weight"][:, 0]
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), U @ V.T + b[None, :], atol=1e-5)
    ref = bpr((U[u] * V[i]).sum(1) + b[i], (U[u] * V[j]).sum(1) + b[j])
    ref += 0.3 * emb_loss(U[u], V[i], V[j], b[i], b[j])
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_lightgcn_equations(tiny):
    ds, r, _ = tiny
    m = built("lightgcn", ds, None, reg=0.2, n_layers=3)
    p = params(m)
    e = layer_mean(lightgcn_norm(r), np.vstack([p["user"], p["item"]]), 3)
    eu, ei = e[:N_USERS], e[N_USERS:]
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    ref += 0.2 * emb_loss(p["user"][u], p["item"][i], p["item"][j])
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("normalise", [False, True])
def test_vbpr_equations(tiny, normalise):
    ds, r, feats = tiny
    m = built("vbpr", ds, feats, reg=0.1, normalise_features=normalise)
    p = params(m)
    assert p["user"].shape == (N_USERS, 128) and p["item_id"].shape == (N_ITEMS, 64)
    raw = [feats[k].vectors.astype(np.float64) for k in ("image", "text")]  # name order
    if normalise:
        raw = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in raw]
    f = np.hstack(raw)
    items = np.hstack([p["item_id"], f @ p["project.weight"].T + p["project.bias"]])
    U = p["user"]
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), U @ items.T, atol=1e-5)
    ref = bpr((U[u] * items[i]).sum(1), (U[u] * items[j]).sum(1)) + 0.1 * emb_loss(U[u], items[i], items[j])
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def lattice_reference(r, feats0, p, k, lam, n_layers, n_ui_layers):
    """MMRec's LATTICE forward (cf_model lightgcn), dense."""
    names = ("image", "text")
    w = np.exp(p["modal_weight"]) / np.exp(p["modal_weight"]).sum()
    learned = sum(
        w[m] * knn_dense(p[f"features.{m}"] @ p[f"project.{m}.weight"].T + p[f"project.{m}.bias"], k, True)
        for m in range(2)
    )
    original = sum(w[m] * laplacian(knn_dense(feats0[n], k, True)) for m, n in enumerate(names))
    item_adj = (1 - lam) * laplacian(learned) + lam * original
    h = p["item"]
    for _ in range(n_layers):
        h = item_adj @ h
    a = bipartite(r) + np.eye(sum(r.shape))
    norm_adj = a / a.sum(1, keepdims=True)  # D^-1 (A + I)
    e = layer_mean(norm_adj, np.vstack([p["user"], p["item"]]), n_ui_layers)
    eu, ei = e[:N_USERS], e[N_USERS:]
    return eu, ei + h / np.linalg.norm(h, axis=1, keepdims=True)


def test_lattice_equations(tiny):
    ds, r, feats = tiny
    m = built("lattice", ds, feats, knn_k=4, reg=0.05, lambda_coeff=0.7, batch_size=16)
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    eu, ei = lattice_reference(r, feats0, p, 4, 0.7, 1, 2)
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    # the reference: 1/2 sum of squares of the final batch embeddings / configured batch size
    ref += 0.05 * 0.5 * ((eu[u] ** 2).sum() + (ei[i] ** 2).sum() + (ei[j] ** 2).sum()) / 16
    assert loss_of(m, _graph=None) == pytest.approx(ref, abs=1e-5)


def test_lattice_prior_graph_is_frozen_from_initial_features(tiny):
    """The prior comes from the FeatureSet as given; training the features leaves it (and the
    FeatureSet) unchanged."""
    ds, r, feats = tiny
    before = feats["image"].vectors.copy()
    m = create_model("lattice", epochs=3, lr=0.05, knn_k=4, batch_size=8, device="cpu").fit(ds, feats, seed=0)
    assert not np.allclose(m.net.features[0].detach().numpy(), before)  # features were trained
    np.testing.assert_array_equal(feats["image"].vectors, before)
    prior = m.priors_[0].to_dense().numpy()
    np.testing.assert_allclose(prior, laplacian(knn_dense(before.astype(np.float64), 4, True)), atol=1e-6)


def test_freedom_equations(tiny):
    ds, r, feats = tiny
    m = built("freedom", ds, feats, knn_k=4, reg_weight=0.3, image_weight=0.2, dropout=0.0)
    p = params(m)
    s = 0.2 * laplacian(knn_dense(feats["image"].vectors.astype(np.float64), 4, False), 1e-7)
    s += 0.8 * laplacian(knn_dense(feats["text"].vectors.astype(np.float64), 4, False), 1e-7)
    h = s @ p["item"]
    e = layer_mean(lightgcn_norm(r), np.vstack([p["user"], p["item"]]), 2)
    eu, ei = e[:N_USERS], e[N_USERS:] + h
    u, i, j = BATCH
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    for k in range(2):
        z = p[f"features.{k}"] @ p[f"project.{k}.weight"].T + p[f"project.{k}.bias"]
        ref += 0.3 * bpr((eu[u] * z[i]).sum(1), (eu[u] * z[j]).sum(1))
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_bm3_equations(tiny):
    ds, r, feats = tiny
    m = built("bm3", ds, feats, dropout=0.0, reg_weight=0.05, cl_weight=1.5, n_layers=2)
    p = params(m)
    e = layer_mean(lightgcn_norm(r), np.vstack([p["user"], p["item"]]), 2)
    eu, ei = e[:N_USERS], e[N_USERS:] + p["item"]

    def pred(x):
        return x @ p["predictor.weight"].T + p["predictor.bias"]

    np.testing.assert_allclose(scores_of(m), pred(eu) @ pred(ei).T, atol=1e-5)
    u, i, _ = BATCH
    ref = (1 - cos_rows(pred(eu)[u], ei[i]).mean()) + (1 - cos_rows(pred(ei)[i], eu[u]).mean())
    ref += 0.05 * (np.linalg.norm(eu) + np.linalg.norm(ei)) / N_ITEMS
    cl = 0.0
    for k in range(2):
        z = p[f"features.{k}"] @ p[f"project.{k}.weight"].T + p[f"project.{k}.bias"]
        cl += (1 - cos_rows(pred(z)[i], ei[i]).mean()) + (1 - cos_rows(pred(z)[i], z[i]).mean())
    ref += 1.5 * cl
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


# ---- the shared training protocol ----------------------------------------------------------
def test_negatives_come_from_training_items_only(tiny):
    """MMRec samples negatives among items seen in training; item 13 has no training interaction."""
    from vlmrec.models.sampling import negative_pool, sample_triples

    ds, r, _ = tiny
    train = ds.matrix("train")
    pool = negative_pool(train, "train")
    assert 13 not in pool and len(pool) == 13
    rng = np.random.default_rng(0)
    negs = np.concatenate([sample_triples(train, rng, pool)[2] for _ in range(200)])
    assert 13 not in set(negs)
    all_negs = np.concatenate(
        [sample_triples(train, rng, negative_pool(train, "all"))[2] for _ in range(200)]
    )
    assert 13 in set(all_negs)
    m = create_model("bprmf", epochs=1, device="cpu")
    assert m.training.negatives == "train"


def test_learning_rate_decay_follows_the_reference_scheduler(tiny):
    ds, _, _ = tiny
    m = create_model("lattice", epochs=3, lr=0.01, lr_decay=0.5, lr_decay_step=1, knn_k=3, device="cpu")
    m.fit(ds, {"t": FeatureSet.create(np.eye(N_ITEMS)[:, :5] + 0.1, ds, name="t")}, seed=0)
    np.testing.assert_allclose(m.lr_history_, [0.01, 0.005, 0.0025])
    assert create_model("lattice").training == TrainingParams(lr_decay=0.96, lr_decay_step=50)


def test_reference_defaults():
    """MMRec's overall.yaml: lr 1e-3, batch 2048, 1000 epochs, stopping_step 20, 64-d embeddings."""
    for name in ("bprmf", "lightgcn", "vbpr", "lattice", "freedom", "bm3"):
        m = create_model(name)
        t = m.training
        assert (t.lr, t.batch_size, t.epochs, t.patience) == (1e-3, 2048, 1000, 20), name
    v = create_model("vbpr")
    assert (v.id_dim, v.content_dim, v.normalise_features) == (64, 64, False)
