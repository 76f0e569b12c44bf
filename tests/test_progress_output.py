"""Progress on a non-interactive terminal: `vlmrec run ... > log 2>&1` must not write one line per
progress refresh (tqdm bars off when stderr is not a TTY), and labels in brackets must survive
rich's markup."""

import subprocess
import sys
from collections import Counter

import yaml


def test_run_log_has_no_repeated_progress_lines(tmp_path):
    cfg = {
        "name": "tiny-log",
        "output_dir": str(tmp_path / "run"),
        "seeds": [0],
        "threads": 1,
        "dataset": {
            "format": "planted",
            "path": str(tmp_path / "raw"),
            "planted": {"n_users": 40, "n_items": 30, "interactions_per_user": 8},
        },
        # extraction goes through the extraction progress bar, the torch models through the
        # training loop's bar (40 epochs, validated every epoch: 40 refreshes each if shown)
        "features": [{"name": "title", "extractor": "onehot", "fields": ["title"]}],
        "controls": ["shuffled"],
        "models": [
            {"name": "bprmf", "params": {"epochs": 40, "batch_size": 64, "patience": 100}},
            {
                "name": "vbpr",
                "params": {"epochs": 40, "batch_size": 64, "patience": 100},
                "features": ["title"],
            },
        ],
        "evaluation": {"ks": [5]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "log.txt"
    with log.open("w") as f:  # stdout and stderr both a file, as `> log.txt 2>&1`
        proc = subprocess.run(
            [sys.executable, "-m", "vlmrec.cli", "run", str(path)], stdout=f, stderr=subprocess.STDOUT
        )
    text = log.read_text()
    assert proc.returncode == 0, text
    # a refresh is a carriage return (tqdm) or a new line: count both
    lines = [s.strip() for s in text.replace("\r", "\n").split("\n") if s.strip()]
    assert not [s for s in lines if "epoch/s" in s or "it/s" in s or "%|" in s], text
    repeats = {s: n for s, n in Counter(lines).items() if n > 3}
    assert not repeats, repeats
    # one line per cell, each with its features label in brackets (escaped for rich)
    for label in ("[none]", "[title]", "[title~shuffled]"):
        assert label in text, text
    assert "verdict: tiny-log" in text
