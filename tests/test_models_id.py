import numpy as np
import pytest
import torch

from vlmrec.errors import ConfigError, ModelError
from vlmrec.evaluation import Evaluator
from vlmrec.models import create_model
from vlmrec.models.graph import user_item_adjacency
from vlmrec.models.lightgcn import propagate

FAST = {
    "bprmf": {"epochs": 40, "lr": 0.01},
    "lightgcn": {"epochs": 30, "lr": 0.01},
    "itemknn": {},
    "ease": {},
    "ials": {},
}


@pytest.fixture(scope="module")
def mostpop_recall(community_dataset):
    m = create_model("mostpop").fit(community_dataset)
    return Evaluator(community_dataset, "test", ks=[10]).evaluate(m).mean("recall", 10)


@pytest.mark.parametrize("name", list(FAST))
def test_beats_mostpop_on_communities(community_dataset, mostpop_recall, name):
    m = create_model(name, **FAST[name]).fit(community_dataset, seed=0)
    recall = Evaluator(community_dataset, "test", ks=[10]).evaluate(m).mean("recall", 10)
    assert recall > mostpop_recall + 0.05, (name, recall, mostpop_recall)


@pytest.mark.parametrize("name", ["bprmf", "lightgcn", "random"])
def test_same_seed_same_scores(community_dataset, name):
    params = {"epochs": 3} if name != "random" else {}
    users = np.arange(10)
    a = create_model(name, **params).fit(community_dataset, seed=5).score(users)
    b = create_model(name, **params).fit(community_dataset, seed=5).score(users)
    c = create_model(name, **params).fit(community_dataset, seed=6).score(users)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (10, community_dataset.n_items)


def test_loss_decreases(community_dataset):
    m = create_model("bprmf", epochs=8, lr=0.01).fit(community_dataset, seed=0)
    assert m.history_[-1] < m.history_[0]


def test_lightgcn_propagation_matches_dense_reference():
    import scipy.sparse as sp

    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1]], np.float32))
    adj = user_item_adjacency(r)
    a = np.zeros((5, 5))
    a[:2, 2:] = r.toarray()
    a[2:, :2] = r.toarray().T
    d = a.sum(1) ** -0.5
    norm = d[:, None] * a * d[None, :]
    assert np.allclose(adj.toarray(), norm, atol=1e-6)
    e0 = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    expected = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    from vlmrec.models.graph import to_torch_sparse

    got = propagate(to_torch_sparse(adj), torch.as_tensor(e0), 2).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_early_stopping_restores_best(community_dataset):
    calls = []

    def validator(m):
        calls.append(len(calls))
        return [0.1, 0.5, 0.2, 0.2, 0.2][len(calls) - 1]

    m = create_model("bprmf", epochs=20, patience=3).fit(community_dataset, seed=0, validator=validator)
    assert m.epochs_run_ == 5 and m.best_valid_ == 0.5


def test_unknown_model_and_param_are_named():
    with pytest.raises(ConfigError, match="available: .*bprmf"):
        create_model("bpr-mf")
    with pytest.raises(ModelError, match="no parameter"):
        create_model("bprmf", learning_rate=0.1)


def test_clone_keeps_params():
    m = create_model("itemknn", k=7)
    assert m.clone().k == 7 and m.clone(k=3).k == 3
