"""The report's "What each model recommends" section: a stratified, seeded sample of test users,
each row's top-10 exactly as the evaluator ranked it (hits, cold and tail flags), twins under
their content row, "where they disagree", thumbnails under a size budget, and the page checked in
headless Chromium at 1,280 px and at phone width."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from tests.browser import Browser
from tests.visual_run import COLD, visual_run
from vlmrec.data.dataset import Dataset
from vlmrec.evaluation.evaluator import Evaluator
from vlmrec.experiments.artifacts import RunArtifact
from vlmrec.experiments.examples import (
    REPORT_BUDGET_BYTES,
    build_examples,
    item_infos,
    load_models,
    run_rows,
)
from vlmrec.experiments.report import write_report
from vlmrec.experiments.report_examples import examples_html


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return visual_run(tmp_path_factory.mktemp("visual"))


@pytest.fixture(scope="module")
def section(run):
    folder = RunArtifact(run)
    ds = Dataset.load(folder.dataset_dir())
    return ds, build_examples(run, ds, folder.summary(), "itemknn")


def test_rows_keep_twins_under_their_content_row(run):
    rows = run_rows(RunArtifact(run))
    assert [r.kind for r in rows] == ["id", "id", "content", "twin"]
    assert rows[0].valid_score >= rows[1].valid_score  # ID rows best on validation first
    assert {r.model for r in rows[:2]} == {"itemknn", "mostpop"}
    assert (rows[2].features, rows[3].features) == ("f", "f~shuffled")
    assert rows[3].slug == "profilematch.f-shuffled" and rows[3].label == "profilematch · f~shuffled"


def test_strips_are_the_evaluators_top10_with_hits_and_flags(run, section):
    ds, sec = section
    assert sec is not None and sec.k == 10 and sec.mask == "train+valid"
    folder = RunArtifact(run)
    models = load_models(folder, run_rows(folder))
    ev = Evaluator(ds, "test", ks=[10], mask=("train", "valid"))
    test = ds.matrix("test")
    strata = [u.stratum for u in sec.users]
    assert {"heavy history", "light history", "cold test item", "tail test item"} <= set(strata)
    assert len({u.user for u in sec.users}) == len(sec.users) == 8
    cold = {int(np.flatnonzero(ds.item_ids == c)[0]) for c in COLD}
    for ex in sec.users:
        assert ex.user in set(ev.users) and ex.n_test == test[ex.user].nnz
        if ex.stratum == "cold test item":
            assert cold & set(test[ex.user].indices)
        seen = set(ev.exclude[ex.user].indices)
        assert ex.history and set(ex.history) <= seen and len(ex.history) == min(8, len(seen))
        for strip in ex.strips:
            expected = ev.topk(models[strip.row], np.array([ex.user]), 10)[0]
            assert list(strip.items) == expected.tolist()
            assert list(strip.hits) == [test[ex.user, i] != 0 for i in strip.items]
    assert all(sec.items[i].cold == (i in cold) for i in sec.items)
    # the same seed draws the same users
    again = build_examples(run, ds, RunArtifact(run).summary(), "itemknn")
    assert again is not None and [u.user for u in again.users] == [u.user for u in sec.users]


def test_disagreement_counts_match_a_per_user_recount(run, section):
    ds, sec = section
    dis = sec.disagreement
    assert dis is not None and dis.content.model == "profilematch" and dis.reference.model == "itemknn"
    folder = RunArtifact(run)
    models = load_models(folder, run_rows(folder))
    ev = Evaluator(ds, "test", ks=[10])
    test = ds.matrix("test")
    top_c = ev.topk(models[dis.content], ev.users, 10)
    top_r = ev.topk(models[dis.reference], ev.users, 10)
    times, hits = np.zeros(ds.n_items, int), np.zeros(ds.n_items, int)
    for u, c, r in zip(ev.users, top_c, top_r):
        for i in set(c) - set(r):
            times[i] += 1
            hits[i] += test[u, i] != 0
    assert dis.users == len(ev.users) and dis.content_slots == times.sum() and dis.content_hits == hits.sum()
    for d in dis.only_content:
        assert (d.times, d.hits) == (times[d.item], hits[d.item])
    assert dis.only_content[0].times == times.max()


def test_title_cards_without_images_and_past_the_budget(section):
    ds, sec = section
    bare = copy.deepcopy(ds)
    bare.items["image_path"] = None
    infos = item_infos(bare, range(10))
    assert all(i.thumb is None for i in infos.values())
    html = "".join(examples_html(dataclasses.replace(sec, items={**sec.items, **infos})))
    assert "class='th card'>Community" in html
    small = item_infos(ds, range(40), budget=2_000)
    assert 0 < sum(1 for i in small.values() if i.thumb) < 40
    assert sum(len(i.thumb) for i in small.values() if i.thumb) <= 2_000


def test_report_strips_render_in_chromium_under_the_size_budget(run, tmp_path):
    page = write_report(run)
    text = page.read_text()
    assert page.stat().st_size <= REPORT_BUDGET_BYTES
    assert "What each model recommends (top-10)" in text and "Where they disagree" in text
    assert "What each model recommends" in (run / "report.md").read_text()
    with Browser.start(tmp_path) as b:
        b.goto(page.as_uri())
        for width in (1280, 390):
            b.resize(width)
            b.eval("document.querySelectorAll('details.ex-user').forEach(d=>d.open=true)")
            geo = b.eval(
                "({sw:document.documentElement.scrollWidth,iw:innerWidth,"
                "users:document.querySelectorAll('details.ex-user').length,"
                "strips:document.querySelectorAll('.ex-user .strip:not(.hist)').length,"
                "twins:[...document.querySelectorAll('.strip.twin')].every(t=>t.previousElementSibling"
                ".dataset.row==='profilematch.f'),"
                "thumbs:[...document.querySelectorAll('.ex-user .th')].filter(e=>e.offsetWidth>20&&"
                "getComputedStyle(e).backgroundImage.startsWith('url(\"data:image/')).length,"
                "tiles:document.querySelectorAll('.ex-user .tile').length})"
            )
            assert geo["iw"] == width and geo["sw"] <= width, geo  # nothing overflows the page
            assert geo["users"] == 8 and geo["strips"] == 8 * 4 and geo["twins"], geo
            assert geo["thumbs"] == geo["tiles"] > 8 * 4 * 10, geo  # every tile shows its image
            assert b.broken_images() == []
            b.screenshot(tmp_path / f"report-strips-{width}.png")
        b.pump(0.2)
        assert b.errors == []
    assert (tmp_path / "report-strips-1280.png").stat().st_size > 10_000


def test_a_damaged_saved_model_leaves_the_report_with_a_note(run, tmp_path):
    import shutil

    copy_ = shutil.copytree(run, tmp_path / "run")
    row = run_rows(RunArtifact(copy_))[0]
    (copy_ / "cells" / row.cell / "model" / "arrays.npz").write_bytes(b"not a zip")
    folder = RunArtifact(copy_)
    ds = Dataset.load(folder.dataset_dir())
    sec = build_examples(copy_, ds, folder.summary())
    assert sec is not None and sec.users == () and "could not be loaded" in sec.note
    assert "could not be loaded" in "".join(examples_html(sec))
