"""`vlmrec <verb>`: the command line. It wires the pipeline stages together; the logic lives in
the library modules it calls."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmrec.data.formats import FORMATS
from vlmrec.errors import ConfigError, VlmrecError, option_error
from vlmrec.folders import FolderKind, check_folder, claim_folder, same_folder
from vlmrec.names import safe_name
from vlmrec.serving.http import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT, TOKEN_ENV
from vlmrec.serving.index import INDEX_CHOICES

if TYPE_CHECKING:
    from vlmrec.data.spec import DatasetSpec

app = typer.Typer(
    help="vlmrec: item images and text -> recommender features, measured honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(e: Exception) -> None:
    # escape: messages name fields such as [text] that rich would read as markup and drop;
    # soft_wrap: an error is never broken into lines by the terminal's width (logs, grep, tests)
    text = _os_error(e) if isinstance(e, OSError) else str(e)
    console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)
    raise typer.Exit(2)


_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another --out; finished work is kept and resumes",
    errno.EDQUOT: "the disk quota is used up: free space or choose another --out",
    errno.EROFS: "the file system is read-only: choose a writable --out",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
}


def _os_error(e: OSError) -> str:
    """One line for a file-system error (a full or read-only disk, a missing permission): the
    file, the system's words and what to do. Nothing half-written is trusted afterwards: every
    artifact is written to a temporary name and renamed into place, or marked complete last."""
    where = f"{e.filename}: " if e.filename else ""
    hint = _DISK_HINTS.get(e.errno or 0, "")
    return f"{where}{e.strerror or e}" + (f" ({hint})" if hint else "")


def _version(value: bool) -> None:
    if value:
        from vlmrec.provenance import code_version

        console.print(f"vlmrec {code_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """vlmrec: item images and text -> recommender features, measured honestly."""


def _floats(text: str, option: str = "--ratios") -> tuple[float, ...]:
    """Comma-separated numbers, or a ConfigError naming the option."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected comma-separated numbers such as 0.8,0.1,0.1"
        ) from None
    return values


def _ints(text: str, option: str = "--k") -> list[int]:
    """Comma-separated distinct positive integers, or a ConfigError naming the option."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected comma-separated positive integers such as 10,20"
        ) from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{option} {text!r}: cutoffs must be >= 1")
    if len(set(values)) != len(values):
        raise ConfigError(f"{option} {text!r}: each cutoff once")
    return values


def _output_folder(out: Path, kind: FolderKind, option: str = "--out") -> Path:
    """`out` must not exist yet, be empty, or be vlmrec's own `kind` folder (`folders.check_folder`):
    a user's folder is refused before anything is read or written."""
    return check_folder(out, kind, option)


@app.command()
def prepare(
    out: Path = typer.Option(..., help="Folder to write the prepared dataset to."),
    format: str = typer.Option(
        "table",
        "--format",
        help=f"Reader: {', '.join(FORMATS)} (docs/data.md).",
    ),
    path: Path | None = typer.Option(None, help="File or folder to read (all formats but table)."),
    interactions: Path | None = typer.Option(None, help="Interactions CSV/TSV/Parquet (format table)."),
    items: Path | None = typer.Option(
        None, help="Item table (item_id + text columns), or Amazon metadata file."
    ),
    images: Path | None = typer.Option(None, help="Folder of item images named <item_id>.<ext>."),
    user_col: str = typer.Option("user_id", help="Name of the user id column (format table)."),
    item_col: str = typer.Option("item_id", help="Name of the item id column (format table)."),
    rating_col: str = typer.Option("rating", help="Name of the rating column (format table)."),
    time_col: str = typer.Option(
        "timestamp",
        help="Name of the timestamp column (format table): Unix times or ISO 8601 dates (2021-01-01).",
    ),
    sep: str | None = typer.Option(
        None,
        "--sep",
        help="Field separator of the CSV/TSV files (format table), e.g. ';' or 'tab'; default: sniffed "
        "from each file's first lines among , ; TAB |.",
    ),
    encoding: str | None = typer.Option(
        None,
        "--encoding",
        help="Text encoding of the CSV/TSV files (format table): utf-8 (default), latin-1, cp1252, ..., "
        "or utf-8+latin-1 for files that mix both.",
    ),
    name: str | None = typer.Option(None, help="Dataset name (default: from the path)."),
    rating_threshold: float | None = typer.Option(None, help="Keep ratings >= this as positives."),
    k_core: int = typer.Option(0, "--k-core", help="Iterative k-core on users and items (0: off)."),
    split: str = typer.Option(
        "random",
        help="random (per-user ratios), loo (leave-one-out by time), temporal (global cut), "
        "cold-items (a seeded fraction of items held out of training; see --cold-fraction).",
    ),
    ratios: str = typer.Option("0.8,0.1,0.1", help="Train,valid,test ratios for random/temporal."),
    seed: int = typer.Option(42, min=0, help="Seed of the split (and of the planted generator)."),
    cold_fraction: float = typer.Option(
        0.2,
        "--cold-fraction",
        min=0.0,
        max=1.0,
        help="--split cold-items: fraction of the items held out of training (half validation, "
        "half test, per item).",
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Read a catalogue, clean it, split it, and save a Dataset (Parquet + manifest)."""
    _setup_logging(verbose)
    try:
        _output_folder(out, "dataset")
        spec = _dataset_spec(
            format=format,
            path=path,
            interactions=interactions,
            items=items,
            images=images,
            columns={"user_id": user_col, "item_id": item_col, "rating": rating_col, "timestamp": time_col},
            name=name,
            rating_threshold=rating_threshold,
            k_core=k_core,
            split=split,
            ratios=_floats(ratios),
            seed=seed,
            cold_fraction=cold_fraction,
            sep=sep,
            encoding=encoding,
        )
        ds = spec.prepare(out)
    except (VlmrecError, OSError) as e:
        _fail(e)
    s = ds.stats()
    console.print(f"[bold]{ds.name}[/] -> {out}")
    console.print(
        f"users {s['users']:,}  items {s['items']:,}  interactions {s['interactions']:,}  "
        f"density {s['density']:.4%}  (train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,})"
        f"  items with image {s['items_with_image']:,}"
    )
    console.print(
        f"users covered: train {s.get('users_train', 0):,} / valid {s.get('users_valid', 0):,} / "
        f"test {s.get('users_test', 0):,}"
    )
    cold = (
        (ds.info.get("split") or {}).get("n_cold_items") if isinstance(ds.info.get("split"), dict) else None
    )
    if cold:
        console.print(f"cold items (never in training): {cold:,}")
    _print_cleaning(ds.info)


def _dataset_spec(**options: Any) -> DatasetSpec:
    """The DatasetSpec of `prepare`'s options (the same type as a config's `dataset:`); an invalid
    value is a ConfigError naming the option."""
    from pydantic import ValidationError

    from vlmrec.data.spec import DatasetSpec

    try:
        return DatasetSpec(**options)
    except ValidationError as e:
        if e.errors()[0]["loc"][:1] == ("ratios",):
            raise ConfigError(f"--ratios {options['ratios']}: give three shares train,valid,test") from None
        raise option_error(e) from None


def _print_cleaning(info: dict) -> None:
    """`prepare`'s summary of the rows dropped for each reason and of the item table's match
    (the same numbers as the manifest's `dropped` and `item_table`)."""
    dropped = {reason: n for reason, n in (info.get("dropped") or {}).items() if n}
    if dropped:
        console.print("rows dropped:")
        for reason, n in dropped.items():
            console.print(f"  {n:>10,}  {escape(reason)}")
    else:
        console.print("rows dropped: none")
    table = info.get("item_table")
    if table and table.get("items_without_row"):
        console.print(
            f"item table: {table['items_without_row']:,} items of the interactions have no row "
            f"({table['interactions_on_items_without_row']:,} interactions; kept, with empty text)"
        )
    if table and table.get("rows_without_interactions"):
        console.print(
            f"item table: {table['rows_without_interactions']:,} rows name items with no kept "
            "interaction (not in the dataset)"
        )


@app.command()
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
    _setup_logging(verbose)
    from vlmrec.data.dataset import Dataset
    from vlmrec.experiments.cell import run_cell
    from vlmrec.experiments.results import write_results
    from vlmrec.features.featureset import FeatureSet

    try:
        ks = _ints(k)
        _output_folder(out, "results")
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
        params = _parse_params(param)
        _no_bools(model, params)
        res = run_cell(ds, model, params, fsets, seed=seed, ks=ks, mask=masked)
        claim_folder(out, "results")  # checked again: the folder may have changed while training
        write_results(out, res.results, res.per_user)
    except (VlmrecError, OSError) as e:
        _fail(e)
    table = Table("metric", *[f"@{x}" for x in ks])
    wide = res.results.pivot(index="metric", columns="k", values="value")
    for metric, row in wide.iterrows():
        table.add_row(str(metric), *[f"{row[x]:.4f}" for x in ks])
    console.print(table)
    console.print(f"results: {out / 'results.csv'}")


@app.command()
def extract(
    dataset: Path | None = typer.Option(None, help="A prepared dataset folder."),
    extractor: str | None = typer.Option(None, help="Extractor name (see --list)."),
    out: Path | None = typer.Option(None, help="FeatureSet folder (default: DATASET/features/EXTRACTOR)."),
    model: str | None = typer.Option(
        None, help="Model path or id, for extractors that take one (option model)."
    ),
    prompt: str | None = typer.Option(
        None, help="Prompt template name or YAML file (LVLM extractors; option prompt)."
    ),
    fields: str | None = typer.Option(
        None, help="Comma-separated item fields (text and onehot extractors; option fields)."
    ),
    batch_size: int | None = typer.Option(
        None,
        help="Items per model batch (default: the extractor's own; LVLM extractors choose it from free GPU memory).",
    ),
    layer: str | None = typer.Option(
        None, help="LVLM hidden-state layer: index (-1 last) or mean_last_N (lvlm-embed; option layer)."
    ),
    pooling: str | None = typer.Option(
        None, help="LVLM pooling: mean, image, prompt, last (lvlm-embed; option pooling)."
    ),
    option: list[str] = typer.Option(
        [], "--option", "-o", help="Any extractor option KEY=VALUE, repeatable (see --list --extractor NAME)."
    ),
    chunk_size: int = typer.Option(256, min=1, help="Items per checkpointed chunk (resume granularity)."),
    missing: str = typer.Option(
        "mean", help="Fill for items that fail (listed in the manifest): mean, zero, error."
    ),
    engine: str = typer.Option("local", help="local, or ray (a Ray Data pipeline; vlmrec[ray])."),
    address: str | None = typer.Option(None, help="Ray cluster address (default: start a local one)."),
    workers: int | None = typer.Option(None, help="Ray actors (default: the free CPUs, or GPUs)."),
    list_: bool = typer.Option(
        False,
        "--list",
        help="List the extractors and their options and exit (with --extractor: that one, in full).",
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Compute one FeatureSet for every item, in resumable chunks, with full provenance.

    Options reach the extractor's options model (see --list) the same way as a config's
    `options:`; an option the extractor does not take is an error."""
    _setup_logging(verbose)
    from vlmrec.features import registry

    if list_:
        try:
            names = [registry.get_spec(extractor).name] if extractor else list(registry.EXTRACTORS)
        except (VlmrecError, OSError) as e:
            _fail(e)
        for name in names:
            console.print(f"[bold]{escape(name)}[/]  {escape(registry.get_spec(name).summary)}")
            table = Table(box=None, show_header=False, padding=(0, 1, 0, 4))
            for doc in registry.option_docs(name):
                row = [escape(doc.name), escape(doc.type), f"= {escape(doc.default)}"]
                table.add_row(*row, *([escape(doc.description)] if extractor else []))
            console.print(table)
        return
    if dataset is None or extractor is None:
        _fail(VlmrecError("--dataset and --extractor are required (or --list)"))
        return
    from vlmrec.data.dataset import Dataset
    from vlmrec.features.extraction import ENGINES, MISSING_POLICIES
    from vlmrec.features.extraction import extract as run_extract

    try:
        flags = {
            "model": model,
            "prompt": prompt,
            "fields": fields.split(",") if fields else None,
            "batch_size": batch_size,
            "layer": layer,
            "pooling": pooling,
        }
        given = {k: v for k, v in flags.items() if v is not None}
        extra = registry.parse_assignments(option, "--option")
        for key in sorted(set(given) & set(extra)):
            raise ConfigError(f"--option {key}: also given as --{key.replace('_', '-')}; give it once")
        options = registry.parse_options(extractor, {**given, **extra})
        if missing not in MISSING_POLICIES:
            raise ConfigError(f"--missing {missing!r}: choose one of {', '.join(MISSING_POLICIES)}")
        if engine not in ENGINES:
            raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
        out = _output_folder(out or dataset / "features" / extractor, "featureset")
        ds = Dataset.load(dataset)
        claim_folder(out, "featureset")  # before extraction writes its first chunk
        if engine == "ray":
            from vlmrec.features.engines.ray import extract_ray

            fs = extract_ray(
                dataset,
                extractor,
                out,
                options=options,
                chunk_size=chunk_size,
                missing=missing,
                address=address,
                num_workers=workers,
            )
        else:
            done = run_extract(
                ds, registry.build(extractor, options, out), out, chunk_size=chunk_size, missing=missing
            )
            if done is None:
                raise VlmrecError(f"{out}: extraction stopped early; run it again to resume")
            fs = done
    except (VlmrecError, OSError) as e:
        _fail(e)
    console.print(
        f"{fs.name}: {fs.vectors.shape[0]:,} items x {fs.dim} dims -> {out}"
        f"  ({len(fs.manifest['failed'])} failed, policy {fs.manifest['missing_policy']})"
    )


@app.command()
def describe(
    dataset: Path = typer.Option(..., help="A prepared dataset folder."),
    model: str | None = typer.Option(None, help="LVLM checkpoint folder or hub id."),
    prompt: str = typer.Option(
        "free",
        help="Template: baby, pets, clothing, recipes, movies, free, vlm4rec, control, or a YAML file.",
    ),
    out: Path | None = typer.Option(None, help="Output folder (default DATASET/descriptions/PROMPT)."),
    batch_size: int | None = typer.Option(
        None, help="Images per LVLM call (default: chosen from free GPU memory; CPU: 8)."
    ),
    max_new_tokens: int | None = typer.Option(None, help="Same as --gen max_new_tokens=N (default 96)."),
    gen: list[str] = typer.Option(
        [],
        "--gen",
        help="Generation option KEY=VALUE, repeatable, e.g. --gen do_sample=true --gen temperature=0.7 "
        "(all of them: `vlmrec extract --list --extractor lvlm-describe`).",
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-o",
        help="Any other lvlm-describe option KEY=VALUE, repeatable, e.g. -o device=cuda:1 -o text_model=mpnet.",
    ),
    load_in_4bit: bool = typer.Option(False, help="4-bit weights (needs bitsandbytes and a GPU)."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Generate LVLM descriptions (cached, resumable); write the described-text FeatureSet and, for
    fill-in-the-blank prompts, the one-hot attribute FeatureSet."""
    _setup_logging(verbose)
    from vlmrec.data.dataset import Dataset
    from vlmrec.features.lvlm.extractors import LVLMDescribeOptions, describe_catalogue
    from vlmrec.features.lvlm.model import GenerationOptions
    from vlmrec.features.registry import parse_assignments

    try:
        if out is None:
            out = (
                dataset
                / "descriptions"
                / safe_name(Path(prompt).stem, f"--prompt {prompt!r} (names the folder)")
            )
        _output_folder(out, "descriptions")
        generation = parse_assignments(gen, "--gen")
        if max_new_tokens is not None:
            if "max_new_tokens" in generation:
                raise ConfigError("--gen max_new_tokens: also given as --max-new-tokens; give it once")
            generation["max_new_tokens"] = max_new_tokens
        GenerationOptions.from_options(generation)  # --gen takes generation options only
        other = parse_assignments(option, "--option")
        if load_in_4bit:
            other["load_in_4bit"] = True
        for key in sorted(set(generation) & set(other)):
            raise ConfigError(f"--option {key}: a generation option; give it once, with --gen")
        options = {**generation, **other}
        LVLMDescribeOptions.parse(  # every option checked before the dataset and the model are loaded
            {"model": model, "prompt": prompt, "batch_size": batch_size, **options}, "lvlm-describe"
        )
        ds = Dataset.load(dataset)
        folder = claim_folder(out, "descriptions")  # before the first description is cached
        sets = describe_catalogue(ds, model, prompt, folder, batch_size=batch_size, **options)
    except (VlmrecError, OSError) as e:
        _fail(e)
    for name, fs in sets.items():
        console.print(
            f"{name}: {fs.vectors.shape[0]:,} items x {fs.dim} -> {folder / name} ({len(fs.manifest['failed'])} failed)"
        )
    console.print(f"descriptions: {folder / 'descriptions.jsonl'}")


@app.command()
def fuse(
    inputs: str = typer.Option(..., help="Comma-separated FeatureSet folders (for align: TEXT,IMAGE)."),
    method: str = typer.Option("concat", help="concat, mean, sum, weighted, align."),
    out: Path = typer.Option(..., help="Output FeatureSet folder."),
    weights: str | None = typer.Option(None, help="Comma-separated weights (method weighted only)."),
    dataset: Path | None = typer.Option(
        None, help="Dataset folder (needed by align: fitted on train items)."
    ),
) -> None:
    """Fuse several FeatureSets into one."""
    from vlmrec.data.dataset import Dataset
    from vlmrec.features.combine.fusion import FUSION_METHODS
    from vlmrec.features.combine.fusion import fuse as run_fuse
    from vlmrec.features.featureset import FeatureSet

    try:
        if method not in FUSION_METHODS:
            raise ConfigError(f"--method {method!r}: choose one of {', '.join(FUSION_METHODS)}")
        if weights is not None and method != "weighted":
            raise ConfigError(f"--weights applies to --method weighted only (not {method})")
        paths = [Path(p.strip()) for p in inputs.split(",")]
        for p in paths:
            if same_folder(p, out):
                raise ConfigError(
                    f"--out {out}: is also the input {p}; writing there would destroy it: give another folder"
                )
        _output_folder(out, "featureset")
        ds = Dataset.load(dataset) if dataset else None
        fsets = [FeatureSet.load(p, ds) for p in paths]
        fs = run_fuse(fsets, method, _floats(weights, "--weights") if weights else None, ds)
        fs.manifest["name"] = out.name
        fs.save(out)
    except (VlmrecError, OSError) as e:
        _fail(e)
    console.print(f"{method} of {len(fsets)} sets -> {out} ({fs.dim} dims)")


@app.command()
def control(
    input: Path = typer.Option(..., "--input", help="The real FeatureSet folder."),
    kind: str = typer.Option("shuffled", help="shuffled, random, zero."),
    seed: int = typer.Option(0, min=0),
    out: Path = typer.Option(..., help="Output FeatureSet folder."),
) -> None:
    """Write a content-control twin of a FeatureSet (shuffled rows, matched Gaussian, zeros)."""
    from vlmrec.features.combine.controls import CONTROL_KINDS, make_control
    from vlmrec.features.featureset import FeatureSet

    try:
        if kind not in CONTROL_KINDS:
            raise ConfigError(f"--kind {kind!r}: choose one of {', '.join(CONTROL_KINDS)}")
        if same_folder(input, out):
            raise ConfigError(
                f"--out {out}: is the --input folder; writing the control there would destroy the "
                "real features: give another folder"
            )
        _output_folder(out, "featureset")
        fs = make_control(FeatureSet.load(input), kind, seed)
        fs.manifest["name"] = out.name
        fs.save(out)
    except (VlmrecError, OSError) as e:
        _fail(e)
    console.print(f"{kind} control of {input} (seed {seed}) -> {out}")


@app.command()
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
    _setup_logging(verbose)
    from vlmrec.experiments.config import load_config
    from vlmrec.experiments.engines import ENGINES

    try:
        cfg = load_config(config)
        if engine is not None:
            if engine not in ENGINES:
                raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
            cfg.engine = engine  # type: ignore[assignment]  # checked against ENGINES above
        if address is not None and cfg.engine != "ray":
            raise ConfigError(
                "--address names a Ray cluster: add --engine ray (or engine: ray in the config)"
            )
        if out is not None:
            cfg.output_dir = out
        assert cfg.output_dir is not None  # parse_config fills runs/NAME
        _output_folder(cfg.output_dir, "run", "--out" if out is not None else f"{config}: output_dir")
        output = _run_and_show(cfg, report_after, address=address, max_retries=max_retries)
    except (VlmrecError, OSError) as e:
        _fail(e)
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
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `vlmrec run` or `vlmrec demo`."),
    metric: str = typer.Option("recall"),
    k: int = typer.Option(20),
) -> None:
    """Write report.html (self-contained) and report.md for a run."""
    from vlmrec.experiments.report import write_report

    try:
        check_folder(run_dir, "run", "RUN_DIR")
        path = write_report(run_dir, metric, k)
    except (VlmrecError, OSError) as e:
        _fail(e)
    console.print(f"report: {path}")


@app.command()
def demo(
    quick: bool = typer.Option(
        False, "--quick", help="A ~2-minute version (1 seed, fewer epochs and models)."
    ),
    out: Path = typer.Option(Path("vlmrec-demo"), help="Where results and reports go."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Run the whole pipeline offline on real MovieLens-100k and a generated planted catalogue."""
    import time

    _setup_logging(verbose)
    from vlmrec.experiments.demo import demo_configs

    t0 = time.perf_counter()
    reports = []
    try:
        for cfg in demo_configs(out, quick):
            console.rule(f"{cfg.name}: {cfg.description}")
            output = _run_and_show(cfg)
            reports.append(output.out_dir / "report.html")
    except (VlmrecError, OSError) as e:
        _fail(e)
    console.rule("done")
    for r in reports:
        console.print(f"report: {r.resolve()}")
    console.print(f"results: {[str((r.parent / 'results.csv').resolve()) for r in reports]}")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f}s")


@app.command()
def serve(
    run: Path | None = typer.Option(
        None, "--run", help="A run folder: serves its best trained cell (or --model/--features)."
    ),
    dataset: Path | None = typer.Option(
        None, help="A prepared dataset (with --features): ProfileMatch serving."
    ),
    features: str | None = typer.Option(
        None, help="FeatureSet folder (with --dataset) or features label (with --run)."
    ),
    model: str | None = typer.Option(None, help="With --run: which model's cell to serve."),
    state_dir: Path | None = typer.Option(
        None, help="Where the index and the event and item logs live (survive restarts)."
    ),
    index: str = typer.Option(
        "auto", help=f"Vector index: {', '.join(INDEX_CHOICES)} (auto picks by catalogue size)."
    ),
    nprobe: int | None = typer.Option(None, help="ivf index: cells scanned per query."),
    ef_search: int | None = typer.Option(None, help="hnsw index: candidate list per query."),
    workers: int = typer.Option(
        1, help="Worker processes (1..256) sharing one memory-mapped index and the same logs."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; anything but loopback needs a write token (--token)."
    ),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port, 1..65535."),
    token: str | None = typer.Option(
        None,
        envvar=TOKEN_ENV,
        show_envvar=True,
        help=f"Bearer token POST /events and POST /items require (at least 16 characters; better "
        f"set {TOKEN_ENV} than put it on the command line).",
    ),
    max_body_bytes: int = typer.Option(
        DEFAULT_MAX_BODY, "--max-body-bytes", help="Largest request body; a larger one is answered 413."
    ),
    request_timeout: float = typer.Option(
        DEFAULT_REQUEST_TIMEOUT,
        "--request-timeout",
        help="Seconds a client has to send a whole request (head and body) before the connection is closed.",
    ),
) -> None:
    """Serve recommendations over HTTP (FastAPI; API docs at /docs, schema at /openapi.json).

    The same service as `python -m vlmrec.serving`: the state (index, logs) is built or loaded
    once, then served by `--workers` processes. docs/serving.md: the token, limits and a reverse
    proxy in front."""
    from pydantic import ValidationError

    from vlmrec.serving.http import HttpLimits
    from vlmrec.serving.server import make_spec
    from vlmrec.serving.server import serve as run_server

    try:
        if run is None and (dataset is None or not features):
            raise VlmrecError("give --run RUN_DIR, or --dataset DIR --features FEATURESET_DIR")
        spec = make_spec(
            run=run,
            model=model,
            features=features,
            dataset=dataset,
            state_dir=state_dir,
            index=index,
            nprobe=nprobe,
            ef_search=ef_search,
        )
        try:
            limits = HttpLimits(token=token, max_body_bytes=max_body_bytes, request_timeout=request_timeout)
        except ValidationError as e:
            raise option_error(e) from None
        run_server(spec, host, port, workers, announce=console.print, limits=limits)
    except (VlmrecError, OSError) as e:
        _fail(e)


if __name__ == "__main__":  # pragma: no cover
    app()
