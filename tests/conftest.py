import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# CLI output is read by tests: the same console width whatever the terminal (rich reads COLUMNS
# once, when vlmrec.cli creates its console), wide enough that tables do not wrap; errors are
# printed unwrapped at any width (soft_wrap), so long temp paths do not matter either
os.environ["COLUMNS"] = "240"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vlmrec.data.dataset import build_dataset  # noqa: E402
from vlmrec.data.splits import split_interactions  # noqa: E402

torch.set_num_threads(1)


def community_interactions(
    n_users=120, n_items=80, per_user=12, noise=0.05, seed=0, n_comm=2
) -> tuple[pd.DataFrame, np.ndarray]:
    """Two user/item communities: users in community c mostly pick items of community c.
    With n_comm communities, item i and user u belong to community index % n_comm. Item popularity is skewed so MostPop is a real (but beatable) baseline."""
    rng = np.random.default_rng(seed)
    item_comm = np.arange(n_items) % n_comm
    user_comm = np.arange(n_users) % n_comm
    pop = 1.0 / (1 + np.arange(n_items)) ** 0.3
    rows = []
    for u in range(n_users):
        p = np.where(item_comm == user_comm[u], 1.0, noise) * pop
        items = rng.choice(n_items, size=per_user, replace=False, p=p / p.sum())
        rows += [(f"u{u}", f"i{i:03d}", 1.0, 1000 * u + t) for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]), item_comm


@pytest.fixture(scope="session")
def community_dataset():
    df, item_comm = community_interactions()
    train, valid, test = split_interactions(df, "random", (0.7, 0.1, 0.2), seed=1)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(80)],
            "title": [f"community {c} thing {i}" for i, c in enumerate(item_comm)],
        }
    )
    ds = build_dataset("communities", train, valid, test, items)
    # community label of each item in the dataset's item order
    ds.info["item_community"] = [int(iid[1:]) % 2 for iid in ds.item_ids]
    return ds


@pytest.fixture(scope="session")
def multi_community_dataset():
    """Six communities: a content model that knows an item's community narrows 120 items to 20."""
    df, item_comm = community_interactions(n_users=180, n_items=120, n_comm=6, seed=2)
    train, valid, test = split_interactions(df, "random", (0.7, 0.1, 0.2), seed=1)
    ds = build_dataset("communities6", train, valid, test)
    ds.info["item_community"] = [int(iid[1:]) % 6 for iid in ds.item_ids]
    return ds
