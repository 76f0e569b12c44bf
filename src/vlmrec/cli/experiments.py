"""Commands that train and compare: `models`, `evaluate`, `run`, `report`, `demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from vlmrec.cli.base import app, console, ints, output_folder, reports_errors, setup_logging
from vlmrec.errors import ConfigError
from vlmrec.folders import check_folder, claim_folder


@app.command()
@reports_errors
def models() -> None:
    """List the registered recommenders."""
    from vlmrec.models import MODELS

    table = Table("name", "uses content", "parameters")
    for name, cls in sorted(MODELS.items()):
        table.add_row(name, "yes" if cls.uses_features else "no", ", ".join(cls.param_names()))
    console.print(table)


def _parse_params(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise typer.BadParameter(f"--param {p!r}: expected NAME=VALUE")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _no_bools(model: str, params: dict[str, Any]) -> None:
    """`--param k=true` is refused for a parameter that is not a switch (JSON's true is not 1)."""
    from vlmrec.experiments.config import bool_problem
    from vlmrec.models import MODELS

    problem = bool_problem(model, params) if model in MODELS else None
    if problem:
        raise ConfigError(f"--param {problem}")


@app.command()
@reports_errors
def evaluate(
    dataset: Path = typer.Option(..., help="A prepared dataset folder."),
    model: str = typer.Option(..., help="Model name (see `vlmrec models`)."),
    features: str | None = typer.Option(None, help="Comma-separated FeatureSet folders."),
    param: list[str] = typer.Option([], "--param", help="Hyperparameter NAME=VALUE (repeatable)."),
    k: str = typer.Option("10,20", help="Cutoffs."),
    seed: int = typer.Option(0, min=0),
    mask: str = typer.Option(
        "train,valid", help="Splits masked from the test ranking: train,valid (default) or train (MMRec)."
    ),
    out: Path = typer.Option(
        Path("vlmrec-results"), help="Folder for results.csv/.parquet and per-user values."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Train one model (early stopping on validation) and evaluate it on test, full ranking."""
    setup_logging(verbose)
    from vlmrec.data.dataset import Dataset
    from vlmrec.experiments.cell import run_cell
    from vlmrec.experiments.results import write_results
    from vlmrec.features.featureset import FeatureSet
    from vlmrec.models import validate_params

    ks = ints(k)
    params = _parse_params(param)
    _no_bools(model, params)
    validate_params(model, params)  # an unknown model or parameter fails before any loading
    output_folder(out, "results")
    ds = Dataset.load(dataset)
    if max(ks) > ds.n_items:
        raise ConfigError(f"--k {k}: larger than the catalogue ({ds.n_items} items)")
    fsets = None
    if features:
        fsets = {}
        for p in features.split(","):
            fs = FeatureSet.load(Path(p.strip()), ds)
            fsets[fs.name] = fs
    masked = tuple(x.strip() for x in mask.split(","))
    if masked not in (("train",), ("train", "valid")):
        raise ConfigError(f"--mask {mask!r}: choose train,valid or train")
    # early stopping on validation recall at the cutoff the user asked for (20 when given)
    select = ("recall", 20 if 20 in ks else max(ks))
    res = run_cell(ds, model, params, fsets, seed=seed, ks=ks, mask=masked, select_metric=select)
    claim_folder(out, "results")  # checked again: the folder may have changed while training
    write_results(out, res.results, res.per_user)
    table = Table("metric", *[f"@{x}" for x in ks])
    wide = res.results.pivot(index="metric", columns="k", values="value")
    for metric, row in wide.iterrows():
        table.add_row(str(metric), *[f"{row[x]:.4f}" for x in ks])
    console.print(table)
    console.print(f"results: {out / 'results.csv'}")


@app.command()
@reports_errors
def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    out: Path | None = typer.Option(None, help="Override the config's output_dir."),
    report_after: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report at the end."),
    engine: str | None = typer.Option(
        None,
        help="local (cells one after another here) or ray (a Ray task per cell); default: the config's `engine`.",
    ),
    address: str | None = typer.Option(
        None,
        help="--engine ray: the Ray cluster to join (auto, HOST:PORT); default: start one on this machine.",
    ),
    max_retries: int = typer.Option(
        3,
        "--max-retries",
        min=0,
        max=100,
        help="--engine ray: resubmissions of a cell whose worker or node died.",
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Run a comparison grid from a YAML config; resumes after a crash (finished cells are skipped).
    A cell that fails by its own error is listed (run.json: failures) and the grid goes on; the
    exit status is then 1. docs/scaling.md: the grid on a Ray cluster."""
    setup_logging(verbose)
    from vlmrec.experiments.config import load_config
    from vlmrec.experiments.engines import ENGINES

    cfg = load_config(config)
    if engine is not None:
        if engine not in ENGINES:
            raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
        cfg.engine = engine  # type: ignore[assignment]  # checked against ENGINES above
    if address is not None and cfg.engine != "ray":
        raise ConfigError("--address names a Ray cluster: add --engine ray (or engine: ray in the config)")
    if out is not None:
        cfg.output_dir = out
    assert cfg.output_dir is not None  # parse_config fills runs/NAME
    output_folder(cfg.output_dir, "run", "--out" if out is not None else f"{config}: output_dir")
    output = _run_and_show(cfg, report_after, address=address, max_retries=max_retries)
    for f in output.failures:
        line = f"{f['model']} [{f['features']}] {f['params']} seed {f['seed']}: {f['error']}"
        console.print(f"[red]failed[/] {escape(line)}", soft_wrap=True)
    if output.failures:
        n = len(output.failures)
        console.print(f"[red]{n} cell(s) failed[/]: rerun to retry them (finished cells are reused)")
        raise typer.Exit(1)


def _run_and_show(cfg, report_after: bool = True, address: str | None = None, max_retries: int = 3):
    """Run a config, print its leaderboard (segment "all"), write the report, and end with the
    verdict block: one line per content row with its two labels (content use, worth) and gaps.
    `address`, `max_retries`: the Ray engine's (`vlmrec run --address/--max-retries`)."""
    from vlmrec.experiments.leaderboard import format_markdown, leaderboard
    from vlmrec.experiments.report import write_report
    from vlmrec.experiments.runner import run_experiment

    output = run_experiment(
        cfg,
        on_event=lambda msg: console.print(f"[dim]{escape(cfg.name)}[/] {escape(msg)}", soft_wrap=True),
        address=address,
        max_retries=max_retries,
    )
    console.print(
        f"[bold]{escape(cfg.name)}[/]: {output.cells_run} cells run, {output.cells_skipped} reused; "
        f"results: {escape(str(output.out_dir / 'results.csv'))}"
    )
    spec = output.comparisons.spec
    board = leaderboard(output.results, output.per_user, spec.metric, spec.k, comparisons=output.comparisons)
    console.print(format_markdown(board), markup=False, soft_wrap=True)
    if report_after:
        path = write_report(output.out_dir, spec.metric, spec.k)
        console.print(f"report: {escape(str(path))}")
    print_verdict(cfg.name, output)
    return output


def print_verdict(name: str, output) -> None:
    """The verdict block: a title, one short line per content row (segments whose labels differ
    indented below it), the procedure said once, and where the details are."""
    from vlmrec.experiments.verdict import (
        TERMINAL_SEGMENTS,
        TONE,
        procedure_note,
        verdict_lines,
        verdict_summary,
    )

    verdicts = output.verdicts
    console.print(f"[bold]{escape(f'verdict: {name} ({verdict_summary(verdicts)})')}[/]", soft_wrap=True)
    colour = {"good": "green", "bad": "red"}
    overall = {v.line(): v for v in verdicts if v.segment == "all"}
    for line in verdict_lines(verdicts, TERMINAL_SEGMENTS):
        v = overall.get(line)
        if v is None:
            console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
            continue
        tone = colour.get(TONE.get(v.worth, ""), colour.get(TONE.get(v.use, ""), "yellow"))
        console.print(f"[{tone}]●[/] {escape(line)}", soft_wrap=True)
    if overall:
        console.print(f"[dim]{escape(procedure_note(output.comparisons))}[/]", soft_wrap=True)
        console.print(f"[dim]details: {escape(str(output.out_dir / 'verdict.json'))}[/]", soft_wrap=True)


@app.command()
@reports_errors
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `vlmrec run` or `vlmrec demo`."),
    metric: str = typer.Option("recall"),
    k: int = typer.Option(20),
) -> None:
    """Write report.html (self-contained) and report.md for a run."""
    from vlmrec.experiments.report import write_report

    check_folder(run_dir, "run", "RUN_DIR")
    path = write_report(run_dir, metric, k)
    console.print(f"report: {path}")


@app.command()
@reports_errors
def demo(
    quick: bool = typer.Option(
        False, "--quick", help="A ~2-minute version (1 seed, fewer epochs and models)."
    ),
    out: Path = typer.Option(Path("vlmrec-demo"), help="Where results and reports go."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Run the whole pipeline offline on real MovieLens-100k and a generated planted catalogue."""
    import time

    setup_logging(verbose)
    from vlmrec.experiments.demo import demo_configs

    t0 = time.perf_counter()
    reports = []
    for cfg in demo_configs(out, quick):
        console.rule(f"{cfg.name}: {cfg.description}")
        output = _run_and_show(cfg)
        reports.append(output.out_dir / "report.html")
    console.rule("done")
    for r in reports:
        console.print(f"report: {r.resolve()}")
    console.print(f"results: {[str((r.parent / 'results.csv').resolve()) for r in reports]}")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f}s")
