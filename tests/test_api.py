"""The Python API: `import vlmrec` stays light (names load on use), every exported name resolves to
the object the CLI uses, and the README's "From Python" snippet runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import vlmrec

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet(heading: str = "## From Python") -> str:
    """The first Python code block under `heading` in README.md, verbatim."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading!r} in README.md"
    return match.group(1)


def test_import_vlmrec_does_not_import_torch():
    code = "import sys, vlmrec; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_exported_name_is_the_stage_object():
    from vlmrec.data.spec import DatasetSpec
    from vlmrec.experiments.comparisons import ComparisonSpec
    from vlmrec.experiments.runner import Runner
    from vlmrec.models.registry import create_model

    assert vlmrec.DatasetSpec is DatasetSpec and vlmrec.Runner is Runner
    assert vlmrec.create_model is create_model and vlmrec.ComparisonSpec is ComparisonSpec
    for name in vlmrec.__all__:
        assert getattr(vlmrec, name) is not None, name
    assert set(vlmrec.__all__) <= set(dir(vlmrec))


def test_an_unknown_name_is_an_attribute_error():
    try:
        vlmrec.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:  # pragma: no cover
        raise AssertionError("vlmrec.NoSuchThing resolved")


def test_prepare_takes_a_spec_a_dict_or_a_prepared_folder(tmp_path):
    options = {"format": "planted", "path": str(tmp_path / "raw"), "planted": {"n_users": 30, "n_items": 20}}
    ds = vlmrec.prepare(options, out=tmp_path / "ds")
    again = vlmrec.prepare({"prepared": str(tmp_path / "ds")})
    assert again.fingerprint == ds.fingerprint and again.n_items == ds.n_items


def test_the_readme_python_snippet_runs_as_written(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    (tmp_path / "snippet.py").write_text(readme_snippet())
    out = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "recall" in out.stdout and "profilematch [text]:" in out.stdout
    assert (tmp_path / "work" / "run" / "verdict.json").is_file()
