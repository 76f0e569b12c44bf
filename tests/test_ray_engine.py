"""The Ray engine gives the local engine's FeatureSet and survives a killed worker. Few and fast."""

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from vlmrec.data import prepare_dataset  # noqa: E402
from vlmrec.features.engines.ray import CRASH_ENV, extract_ray  # noqa: E402
from vlmrec.features.extraction import extract  # noqa: E402
from vlmrec.features.registry import build_extractor  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("rayds")
    ds = prepare_dataset(
        "planted", out=d / "ds", planted_options={"n_users": 30, "n_items": 40, "image_size": 48}
    )
    return ds, d / "ds"


def test_ray_matches_local_and_recovers_from_killed_worker(ray_cluster, planted, tmp_path, monkeypatch):
    ds, ds_dir = planted
    local = extract(
        ds,
        build_extractor("onehot", tmp_path / "l", fields=["title"], items=ds.items),
        tmp_path / "l",
        chunk_size=8,
        progress=False,
    )
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"{marker}:2")
    # the cluster was started before the variable was set: pass it to the workers explicitly
    ray.shutdown()
    ray.init(
        num_cpus=2,
        log_to_driver=False,
        include_dashboard=False,
        runtime_env={"env_vars": {CRASH_ENV: f"{marker}:2"}},
    )
    fs = extract_ray(ds_dir, "onehot", tmp_path / "r", options={"fields": ["title"]}, chunk_size=8)
    assert marker.exists()  # a worker really died on chunk 2
    assert np.array_equal(fs.vectors, local.vectors)
    assert fs.manifest["engine"] == "ray" and fs.manifest["vocabulary"] == local.manifest["vocabulary"]
    assert fs.manifest["failed"] == local.manifest["failed"]


def test_ray_text_extractor_matches_local(ray_cluster, planted, tmp_path):
    ds, ds_dir = planted
    local = extract(
        ds, build_extractor("text", tmp_path / "l"), tmp_path / "l", chunk_size=16, progress=False
    )
    fs = extract_ray(ds_dir, "text", tmp_path / "r", chunk_size=16)
    assert np.allclose(fs.vectors, local.vectors, atol=1e-5)
    assert fs.manifest["model"] == local.manifest["model"] and fs.manifest["dim"] == 384
