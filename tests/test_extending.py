"""The README's "Extending vlmrec" snippets run as written: a new model gets a validated spec,
scores as its equation says, and round-trips; a new extractor's options are validated and
`extract` runs it end to end."""

import re
from pathlib import Path

import numpy as np
import pytest

from vlmrec.errors import ConfigError, ModelError
from vlmrec.models import MODELS, Recommender, create_model

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets() -> list[str]:
    text = README.read_text()
    section = text.split("## Extending vlmrec", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def cooc_model():
    namespace: dict = {}
    exec(compile(snippets()[0], "README.md:model", "exec"), namespace)
    yield namespace["Cooccurrence"]
    MODELS.pop("cooc", None)


def test_readme_model_is_validated_scores_by_its_equation_and_round_trips(
    cooc_model, community_dataset, tmp_path
):
    with pytest.raises(ModelError, match="alpha=1.5"):
        create_model("cooc", alpha=1.5)  # the range it declares itself
    with pytest.raises(ModelError, match="no parameter 'beta'"):
        create_model("cooc", beta=1)
    from vlmrec.models import param_spec

    assert param_spec(cooc_model).model_fields["alpha"].description == "popularity damping"
    m = create_model("cooc", alpha=0.3).fit(community_dataset)
    x = community_dataset.matrix("train").toarray()
    pop = np.maximum(x.sum(0), 1)
    users = np.array([0, 3, 9])
    expected = np.array(
        [
            [sum(x[u, i] * x[:, i] @ x[:, j] for i in range(x.shape[1])) for j in range(x.shape[1])]
            for u in users
        ]
    )
    np.testing.assert_allclose(m.score(users), expected / pop**0.3, rtol=1e-5)
    loaded = Recommender.load(m.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score(users), m.score(users))


def test_readme_extractor_is_validated_and_extracts(community_dataset, tmp_path, monkeypatch):
    from vlmrec.features import registry
    from vlmrec.features.extraction import extract

    namespace: dict = {}
    exec(compile(snippets()[1], "README.md:extractor", "exec"), namespace)
    spec = namespace["HASHED_WORDS"]
    monkeypatch.setitem(registry.EXTRACTORS, spec.name, spec)
    with pytest.raises(ConfigError, match="dim"):
        registry.parse_options("hashed-words", {"dim": 4})
    with pytest.raises(ConfigError, match="colour"):
        registry.parse_options("hashed-words", {"colour": "red"})
    fs = extract(
        community_dataset, registry.build("hashed-words", {"dim": 64}, tmp_path), tmp_path, progress=False
    )
    assert fs is not None and fs.vectors.shape == (community_dataset.n_items, 64)
    from sklearn.feature_extraction.text import HashingVectorizer

    # each row is its own item's title, in the dataset's item order
    titles = community_dataset.items.set_index("item_id").loc[list(community_dataset.item_ids), "title"]
    direct = HashingVectorizer(n_features=64, alternate_sign=False).transform(titles).toarray()
    np.testing.assert_allclose(fs.vectors, direct, rtol=1e-6)
    assert fs.manifest["extractor"] == "hashed-words"
