"""Content and multimodal recommenders on a two-community dataset whose item features carry the
community signal; the content-control assertions are the point of the mission."""

import numpy as np
import pytest

from vlmrec.errors import ModelError
from vlmrec.evaluation import Evaluator
from vlmrec.features.combine.controls import make_control
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model
from vlmrec.models.graph import cosine_knn, knn_normalised

FAST = {"batch_size": 128, "epochs": 25, "lr": 0.01}
MULTIMODAL = {
    "vbpr": FAST,
    "freedom": {**FAST, "dropout": 0.3},
    "lattice": FAST,
    "bm3": {**FAST, "epochs": 40},
}


@pytest.fixture(scope="module")
def content(multi_community_dataset):
    """Two 'modalities': both encode the item's community (one-hot of 6) plus noise."""
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
    shuffled = {k + "~shuffled": make_control(v, "shuffled", seed=1) for k, v in feats.items()}
    return feats, shuffled


def recall10(ds, model):
    return Evaluator(ds, "test", ks=[10], metrics=["recall"]).evaluate(model).mean("recall", 10)


@pytest.fixture(scope="module")
def mostpop(multi_community_dataset):
    return recall10(multi_community_dataset, create_model("mostpop").fit(multi_community_dataset))


@pytest.mark.parametrize(
    "name,params", [("profilematch", {}), ("attributeknn", {"k": 20}), ("vbpr", {**FAST, "id_dim": 0})]
)
def test_content_models_use_content(multi_community_dataset, content, mostpop, name, params):
    """Real features beat MostPop clearly; row-shuffled features lose most of that advantage."""
    ds = multi_community_dataset
    feats, shuffled = content
    real = recall10(ds, create_model(name, **params).fit(ds, feats, seed=0))
    fake = recall10(ds, create_model(name, **params).fit(ds, shuffled, seed=0))
    assert real > mostpop + 0.05, (name, real, mostpop)
    assert fake - mostpop < 0.5 * (real - mostpop), (name, real, fake, mostpop)


@pytest.mark.parametrize("name", list(MULTIMODAL))
def test_multimodal_models_beat_mostpop(multi_community_dataset, content, mostpop, name):
    ds = multi_community_dataset
    m = create_model(name, **MULTIMODAL[name]).fit(ds, content[0], seed=0)
    assert recall10(ds, m) > mostpop + 0.05
    assert m.history_[2] < m.history_[0]  # loss decreases over the first epochs


@pytest.mark.parametrize("name", list(MULTIMODAL))
def test_multimodal_same_seed_same_scores(multi_community_dataset, content, name):
    ds = multi_community_dataset
    params = {**MULTIMODAL[name], "epochs": 2}
    users = np.arange(8)
    a = create_model(name, **params).fit(ds, content[0], seed=3).score(users)
    b = create_model(name, **params).fit(ds, content[0], seed=3).score(users)
    assert np.array_equal(a, b) and a.shape == (8, ds.n_items)


def test_content_models_need_features(community_dataset):
    for name in ("profilematch", "attributeknn", "vbpr", "freedom", "lattice", "bm3"):
        with pytest.raises(ModelError, match="needs item features"):
            create_model(name).fit(community_dataset, None)


def test_profilematch_hand_computed(community_dataset):
    ds = community_dataset
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ds.n_items, 5)).astype(np.float32)
    fs = FeatureSet.create(x, ds, extractor="x", model="x", name="x")
    m = create_model("profilematch").fit(ds, {"x": fs})
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    hist = ds.train.query("user == 3")["item"].to_numpy()
    p = xn[hist].mean(0)
    expected = xn @ p / np.linalg.norm(p)
    assert np.allclose(m.score(np.array([3]))[0], expected, atol=1e-5)
    # last-1: the profile is the newest train item
    last = ds.train.query("user == 3").sort_values("timestamp")["item"].iloc[-1]
    m1 = create_model("profilematch", aggregation="last", last_n=1).fit(ds, {"x": fs})
    assert np.allclose(m1.score(np.array([3]))[0], xn @ xn[last], atol=1e-5)


def test_attributeknn_one_hot_hand_case(community_dataset):
    ds = community_dataset
    onehot = np.zeros((ds.n_items, 2), np.float32)
    comm = np.array(ds.info["item_community"])
    onehot[np.arange(ds.n_items), comm] = 1
    m = create_model("attributeknn", k=ds.n_items).fit(
        ds, {"a": FeatureSet.create(onehot, ds, extractor="a", model="a")}
    )
    u = 0
    hist = ds.train.query("user == @u")["item"].to_numpy()
    # score(j) = number of history items (other than j) in j's community
    expected = np.array([np.sum((comm[hist] == comm[j]) & (hist != j)) for j in range(ds.n_items)])
    assert np.allclose(m.score(np.array([u]))[0], expected)


def test_knn_graph_matches_brute_force():
    """As in the LATTICE/FREEDOM references, the item itself is one of its k neighbours;
    weighted graphs carry the cosine similarity, binary ones 1."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    g = cosine_knn(x, 5, block=7).toarray()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    for i in range(40):
        assert set(np.flatnonzero(g[i])) == set(np.argsort(-sim[i])[:5])
        assert g[i, i] == 1.0
    weighted = cosine_knn(x, 5, weighted=True).toarray()
    assert np.allclose(weighted, np.where(g > 0, sim, 0.0), atol=1e-6)
    no_self = cosine_knn(x, 5, include_self=False).toarray()
    np.fill_diagonal(sim, -np.inf)
    for i in range(40):
        assert set(np.flatnonzero(no_self[i])) == set(np.argsort(-sim[i])[:5])
    norm = knn_normalised(x, 5).toarray()
    d = g.sum(1) ** -0.5
    assert np.allclose(norm, d[:, None] * g * d[None, :], atol=1e-6)


def test_freedom_degree_sensitive_pruning(multi_community_dataset, content):
    ds = multi_community_dataset
    m = create_model("freedom", dropout=0.5, epochs=1, batch_size=128)
    m.fit(ds, content[0], seed=0)
    n_edges = ds.matrix("train").nnz
    kept = m.adj_._nnz() // 2  # symmetric adjacency stores each kept edge twice
    assert kept == int(n_edges * 0.5)


# ---- item cold-start (issue 14) ------------------------------------------------------------
COLD_CONTENT = ["profilematch", "attributeknn", "vbpr", "lattice", "freedom", "bm3"]
COLD_ID = ["mostpop", "itemknn", "ease", "ials", "bprmf", "lightgcn"]


@pytest.fixture(scope="module")
def cold_start():
    """Six communities, 20% of the items held out of training (cold-items split); both feature
    sets carry each item's community, so a cold item's features say who will like it."""
    from tests.conftest import community_interactions
    from vlmrec.data.dataset import build_dataset
    from vlmrec.data.splits import split_cold_items

    df, _ = community_interactions(n_users=180, n_items=120, n_comm=6, seed=2)
    train, valid, test, cold = split_cold_items(df, 0.2, (0.7, 0.1, 0.2), seed=1)
    ds = build_dataset("cold6", train, valid, test)
    comm = np.array([int(iid[1:]) % 6 for iid in ds.item_ids])
    rng = np.random.default_rng(0)
    feats = {}
    for name, dim, modality in (("text", 8, "text"), ("image", 10, "image")):
        x = rng.normal(scale=0.3, size=(ds.n_items, dim))
        x[np.arange(ds.n_items), comm] += 1.0
        feats[name] = FeatureSet.create(
            x, ds, extractor=name, model="synthetic", name=name, modality=modality
        )
    cold_ids = np.flatnonzero(np.bincount(ds.train["item"], minlength=ds.n_items) == 0)
    assert len(cold_ids) == len(cold.all) == 24
    return ds, feats, cold_ids


def _fit(name, ds, feats):
    params = {**MULTIMODAL.get(name, {}), "device": "cpu"} if name in MULTIMODAL else {}
    if name in ("bprmf", "lightgcn"):
        params = {**FAST, "device": "cpu"}
    model = create_model(name, **params)
    return model.fit(ds, feats if model.uses_features else None, seed=0)


@pytest.fixture(scope="module")
def cold_recall(cold_start):
    ds, feats, _ = cold_start
    ev = Evaluator(ds, "test", ks=[20], metrics=["recall"], segments=["cold"])
    out = {}
    for name in COLD_CONTENT + COLD_ID:
        model = _fit(name, ds, feats)
        out[name] = (ev.evaluate(model).mean("recall", 20, "cold"), model)
    return out


def test_content_models_rank_cold_items_far_better_than_id_only_models(cold_recall):
    best_id = max(cold_recall[n][0] for n in COLD_ID)
    for name in COLD_CONTENT:
        assert cold_recall[name][0] > best_id + 0.15, (name, cold_recall[name][0], best_id)


def test_id_only_models_put_every_cold_item_below_every_warm_one(cold_start, cold_recall):
    ds, _, cold_ids = cold_start
    warm = np.setdiff1d(np.arange(ds.n_items), cold_ids)
    users = np.arange(ds.n_users)
    for name in COLD_ID:
        recall, model = cold_recall[name]
        scores = model.score(users)
        assert (scores[:, cold_ids].max(1) < scores[:, warm].min(1)).all(), name
        assert recall == 0.0, name


@pytest.mark.parametrize("name", ["bprmf", "lightgcn", "vbpr", "lattice", "freedom", "bm3"])
def test_warm_only_training_exports_the_raw_factors(name, multi_community_dataset, content):
    """Without cold items, the cold rule changes nothing: fit's factors equal the raw export."""
    ds = multi_community_dataset
    feats, _ = content
    params = {"epochs": 2, "batch_size": 256, "device": "cpu"}
    model = create_model(name, **params).fit(ds, feats if create_model(name).uses_features else None, seed=0)
    before = model.item_factors_.copy()
    assert len(model.cold_items_) == int((np.bincount(ds.train["item"], minlength=ds.n_items) == 0).sum())
    if len(model.cold_items_) == 0:
        model._export()
        np.testing.assert_array_equal(model.item_factors_, before)


# ---- the graph models' cold option: warm content neighbours (issue 20) ------------------------


def test_warm_neighbour_weights_by_hand():
    from vlmrec.models.cold import warm_neighbour_weights

    # 5 items in 2-D; items 3 and 4 are cold. Item 3 = (1, 1): cos with 0 = (1, 0) is 0.7071, with
    # 1 = (1, 1) is 1, with 2 = (-1, 0) is -0.7071 (not a neighbour), with cold 4 never counted.
    # Item 4 = (0, -1): cos 0 with items 0 and 2, -0.7071 with item 1: no positive neighbour.
    x = np.array([[1, 0], [1, 1], [-1, 0], [1, 1], [0, -1]], dtype=np.float32)
    w = warm_neighbour_weights([x], np.array([3, 4]), k=3).toarray()
    s = 1 + 2**-0.5
    np.testing.assert_allclose(w[0], [2**-0.5 / s, 1 / s, 0, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(w[1], np.zeros(5))
    # two modalities: their cosines are averaged
    y = np.array([[0, 1], [1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    w2 = warm_neighbour_weights([x, y], np.array([3]), k=1).toarray()
    # item 3: mean cos with 0 = (0.7071 + 1) / 2, with 1 = (1 + 0) / 2: item 0 wins
    np.testing.assert_allclose(w2[0], [1, 0, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize("name", ["freedom", "lattice", "bm3"])
def test_cold_items_neighbours_re_embeds_only_cold_items_from_warm_neighbours(name, cold_start):
    from vlmrec.models.cold import warm_neighbour_weights
    from vlmrec.models.content import modality_matrices

    ds, feats, cold_ids = cold_start
    params = {**MULTIMODAL.get(name, {}), "epochs": 2, "device": "cpu"}
    reference = create_model(name, **params).fit(ds, feats, seed=0)
    option = create_model(name, **params, cold_items="neighbours").fit(ds, feats, seed=0)
    warm = np.setdiff1d(np.arange(ds.n_items), cold_ids)
    # training is untouched: warm items and users are exactly the reference's
    np.testing.assert_array_equal(option.item_factors_[warm], reference.item_factors_[warm])
    np.testing.assert_array_equal(option.user_factors_, reference.user_factors_)
    # each cold item is the weighted mean of its warm neighbours' final embeddings
    w = warm_neighbour_weights(modality_matrices(list(feats.values())), cold_ids).toarray()
    assert (w.sum(1) > 0).all()
    np.testing.assert_allclose(option.item_factors_[cold_ids], w @ reference.item_factors_, atol=1e-5)
    assert not np.allclose(option.item_factors_[cold_ids], reference.item_factors_[cold_ids])
