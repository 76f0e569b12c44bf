"""The contract every registered model passes (new models are picked up from the registry):
typed hyperparameters with ranges, scores of the right shape, batched == one user at a time,
same seed -> same scores, clone and pickle round trips."""

import pickle

import numpy as np
import pytest

from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import MODELS, Recommender, create_model, param_spec, validate_params

QUICK = {"epochs": 2, "batch_size": 256}


def quick_params(name):
    names = MODELS[name].param_names()
    params = {k: v for k, v in QUICK.items() if k in names}
    if "iterations" in names:
        params["iterations"] = 2
    return params


@pytest.fixture(scope="module")
def feats(community_dataset):
    rng = np.random.default_rng(0)
    comm = np.array(community_dataset.info["item_community"])
    x = rng.normal(scale=0.3, size=(community_dataset.n_items, 6))
    x[np.arange(len(x)), comm] += 1
    return {"text": FeatureSet.create(x, community_dataset, name="text", modality="text")}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, community_dataset, feats):
    name = request.param
    m = create_model(name, **quick_params(name))
    return name, m.fit(community_dataset, feats if m.uses_features else None, seed=3)


def test_scores_shape_and_batched_equals_single(fitted, community_dataset):
    name, m = fitted
    users = np.array([0, 5, 7, 11])
    batch = m.score(users)
    assert batch.shape == (4, community_dataset.n_items), name
    assert np.isfinite(batch).all(), name
    single = np.vstack([m.score(np.array([u])) for u in users])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6, err_msg=name)


def test_same_seed_same_scores(fitted, community_dataset, feats):
    name, m = fitted
    again = create_model(name, **quick_params(name)).fit(
        community_dataset, feats if m.uses_features else None, seed=3
    )
    np.testing.assert_array_equal(m.score(np.arange(6)), again.score(np.arange(6)), err_msg=name)


def test_clone_and_pickle_round_trip(fitted):
    name, m = fitted
    assert m.clone().get_params() == m.get_params()
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.score(np.arange(4)), m.score(np.arange(4)), err_msg=name)


def test_save_load_round_trip_scores_identically(fitted, tmp_path):
    name, m = fitted
    back = Recommender.load(m.save(tmp_path / name))
    assert type(back) is type(m) and back.get_params() == m.get_params()
    np.testing.assert_array_equal(back.score(np.arange(10)), m.score(np.arange(10)), err_msg=name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_params_are_valid_and_typos_are_named(name):
    # the defaults of the flat spec (a torch model's TrainingParams fields included), passed
    # explicitly: pydantic does not check defaults it fills in itself
    defaults = {p: f.default for p, f in param_spec(MODELS[name]).model_fields.items()}
    assert validate_params(name, defaults) == defaults
    assert create_model(name).get_params() == defaults
    with pytest.raises(ModelError, match="no parameter .definitely_not_a_param"):
        create_model(name, definitely_not_a_param=1)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"epochs": -3}, "epochs=-3"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"embedding_dim": 0}, "embedding_dim=0"),
        ({"epochs": "abc"}, "valid integer"),
        ({"epochs": 2.5}, "fractional part"),
        ({"lr": -1}, "lr=-1"),
        ({"dropout": 1.0}, "less than 1"),
        ({"negatives": "cold"}, "'train' or 'all'"),
        ({"device": "gpu"}, "choose auto, cpu or cuda"),
    ],
)
def test_untrainable_params_are_refused_before_training(params, expected):
    name = "freedom" if "dropout" in params else "bprmf"
    with pytest.raises(ModelError, match=expected):
        create_model(name, **params)


def test_cuda_without_cuda_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="no CUDA device"):
        create_model("lightgcn", device="cuda")


def test_strings_from_the_command_line_are_coerced():
    assert create_model("bprmf", epochs="7", lr="0.01").training.epochs == 7
