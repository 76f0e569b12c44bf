"""Commands that make item features: `extractors`, `extract`, `describe`, `fuse`, `control`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from vlmrec.cli.base import (
    app,
    check_choice,
    console,
    fail,
    floats,
    one_of,
    output_folder,
    reports_errors,
    setup_logging,
)
from vlmrec.errors import ConfigError, VlmrecError
from vlmrec.features.combine.controls import CONTROL_KINDS
from vlmrec.features.combine.fusion import FUSION_METHODS
from vlmrec.features.extraction import ENGINES, MISSING_POLICIES
from vlmrec.features.lvlm.options import POOLINGS
from vlmrec.folders import claim_folder, same_folder
from vlmrec.names import safe_name

if TYPE_CHECKING:
    from vlmrec.features.featureset import FeatureSet


@app.command()
@reports_errors
def extractors(
    name: str | None = typer.Argument(None, help="One extractor, with every option described."),
) -> None:
    """List the extractors and their options (with NAME: that one, in full)."""
    from vlmrec.features import registry

    names = [registry.get_spec(name).name] if name else list(registry.EXTRACTORS)
    for each in names:
        console.print(f"[bold]{escape(each)}[/]  {escape(registry.get_spec(each).summary)}")
        table = Table(box=None, show_header=False, padding=(0, 1, 0, 4))
        for doc in registry.option_docs(each):
            row = [escape(doc.name), escape(doc.type), f"= {escape(doc.default)}"]
            table.add_row(*row, *([escape(doc.description)] if name else []))
        console.print(table)


@app.command()
@reports_errors
def extract(
    dataset: Path | None = typer.Option(None, help="A prepared dataset folder."),
    extractor: str | None = typer.Option(None, help="Extractor name (see `vlmrec extractors`)."),
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
        None, help=f"LVLM pooling: {one_of(POOLINGS)} (lvlm-embed; option pooling)."
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-o",
        help="Any extractor option KEY=VALUE, repeatable (see `vlmrec extractors NAME`).",
    ),
    chunk_size: int = typer.Option(256, min=1, help="Items per checkpointed chunk (resume granularity)."),
    missing: str = typer.Option(
        "mean", help=f"Fill for items that fail (listed in the manifest): {one_of(MISSING_POLICIES)}."
    ),
    engine: str = typer.Option("local", help="local, or ray (a Ray Data pipeline; vlmrec[ray])."),
    address: str | None = typer.Option(None, help="Ray cluster address (default: start a local one)."),
    workers: int | None = typer.Option(None, help="Ray actors (default: the free CPUs, or GPUs)."),
    list_: bool = typer.Option(
        False,
        "--list",
        help="Deprecated: use `vlmrec extractors [NAME]`.",
        hidden=True,
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Compute one FeatureSet for every item, in resumable chunks, with full provenance.

    Options reach the extractor's options model (see `vlmrec extractors`) the same way as a
    config's `options:`; an option the extractor does not take is an error."""
    setup_logging(verbose)
    if list_:
        extractors(extractor)
        console.print("[dim]extract --list is deprecated: use `vlmrec extractors [NAME]`[/]")
        return
    if dataset is None or extractor is None:
        fail(VlmrecError("--dataset and --extractor are required (or --list)"))
    flags = {
        "model": model,
        "prompt": prompt,
        "fields": fields.split(",") if fields else None,
        "batch_size": batch_size,
        "layer": layer,
        "pooling": pooling,
    }
    options = _extractor_options(extractor, flags, option)
    check_choice(missing, MISSING_POLICIES, "--missing")
    check_choice(engine, ENGINES, "--engine")
    out = output_folder(out or dataset / "features" / extractor, "featureset")
    fs = _extract(dataset, extractor, out, options, chunk_size, missing, engine, address, workers)
    console.print(
        f"{fs.name}: {fs.vectors.shape[0]:,} items x {fs.dim} dims -> {out}"
        f"  ({len(fs.manifest['failed'])} failed, policy {fs.manifest['missing_policy']})"
    )


def _extractor_options(extractor: str, flags: dict[str, Any], option: list[str]) -> Any:
    """The extractor's options from its own flags (`--model`, `--layer`, ...) and `--option`
    KEY=VALUE pairs, validated by its options model; a key given both ways is an error."""
    from vlmrec.features import registry

    given = {k: v for k, v in flags.items() if v is not None}
    extra = registry.parse_assignments(option, "--option")
    for key in sorted(set(given) & set(extra)):
        raise ConfigError(f"--option {key}: also given as --{key.replace('_', '-')}; give it once")
    return registry.parse_options(extractor, {**given, **extra})


def _extract(
    dataset: Path,
    extractor: str,
    out: Path,
    options: Any,
    chunk_size: int,
    missing: str,
    engine: str,
    address: str | None,
    workers: int | None,
) -> FeatureSet:
    """Run the extraction here (`local`) or as a Ray Data pipeline (`ray`) into `out`."""
    from vlmrec.data.dataset import Dataset
    from vlmrec.features import registry
    from vlmrec.features.extraction import extract as run_extract

    ds = Dataset.load(dataset)
    claim_folder(out, "featureset")  # before extraction writes its first chunk
    if engine == "ray":
        from vlmrec.features.engines.ray import extract_ray

        return extract_ray(
            dataset,
            extractor,
            out,
            options=options,
            chunk_size=chunk_size,
            missing=missing,
            address=address,
            num_workers=workers,
        )
    done = run_extract(
        ds, registry.build(extractor, options, out), out, chunk_size=chunk_size, missing=missing
    )
    if done is None:
        raise VlmrecError(f"{out}: extraction stopped early; run it again to resume")
    return done


@app.command()
@reports_errors
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
        "(all of them: `vlmrec extractors lvlm-describe`).",
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
    setup_logging(verbose)
    from vlmrec.data.dataset import Dataset
    from vlmrec.features.lvlm.extractors import LVLMDescribeOptions, describe_catalogue
    from vlmrec.features.lvlm.model import GenerationOptions
    from vlmrec.features.registry import parse_assignments

    if out is None:
        out = (
            dataset / "descriptions" / safe_name(Path(prompt).stem, f"--prompt {prompt!r} (names the folder)")
        )
    output_folder(out, "descriptions")
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
    for name, fs in sets.items():
        console.print(
            f"{name}: {fs.vectors.shape[0]:,} items x {fs.dim} -> {folder / name} ({len(fs.manifest['failed'])} failed)"
        )
    console.print(f"descriptions: {folder / 'descriptions.jsonl'}")


@app.command()
@reports_errors
def fuse(
    inputs: str = typer.Option(..., help="Comma-separated FeatureSet folders (for align: TEXT,IMAGE)."),
    method: str = typer.Option("concat", help=f"{one_of(FUSION_METHODS)}."),
    out: Path = typer.Option(..., help="Output FeatureSet folder."),
    weights: str | None = typer.Option(None, help="Comma-separated weights (method weighted only)."),
    dataset: Path | None = typer.Option(
        None, help="Dataset folder (needed by align: fitted on train items)."
    ),
) -> None:
    """Fuse several FeatureSets into one."""
    from vlmrec.data.dataset import Dataset
    from vlmrec.features.combine.fusion import fuse as run_fuse
    from vlmrec.features.featureset import FeatureSet

    check_choice(method, FUSION_METHODS, "--method")
    if weights is not None and method != "weighted":
        raise ConfigError(f"--weights applies to --method weighted only (not {method})")
    paths = [Path(p.strip()) for p in inputs.split(",")]
    for p in paths:
        if same_folder(p, out):
            raise ConfigError(
                f"--out {out}: is also the input {p}; writing there would destroy it: give another folder"
            )
    output_folder(out, "featureset")
    ds = Dataset.load(dataset) if dataset else None
    fsets = [FeatureSet.load(p, ds) for p in paths]
    fs = run_fuse(fsets, method, floats(weights, "--weights") if weights else None, ds)
    fs.manifest["name"] = out.name
    fs.save(out)
    console.print(f"{method} of {len(fsets)} sets -> {out} ({fs.dim} dims)")


@app.command()
@reports_errors
def control(
    input: Path = typer.Option(..., "--input", help="The real FeatureSet folder."),
    kind: str = typer.Option("shuffled", help=f"{one_of(CONTROL_KINDS)}."),
    seed: int = typer.Option(0, min=0),
    out: Path = typer.Option(..., help="Output FeatureSet folder."),
) -> None:
    """Write a content-control twin of a FeatureSet (shuffled rows, matched Gaussian, zeros)."""
    from vlmrec.features.combine.controls import make_control
    from vlmrec.features.featureset import FeatureSet

    check_choice(kind, CONTROL_KINDS, "--kind")
    if same_folder(input, out):
        raise ConfigError(
            f"--out {out}: is the --input folder; writing the control there would destroy the "
            "real features: give another folder"
        )
    output_folder(out, "featureset")
    fs = make_control(FeatureSet.load(input), kind, seed)
    fs.manifest["name"] = out.name
    fs.save(out)
    console.print(f"{kind} control of {input} (seed {seed}) -> {out}")
