"""`vlmrec prepare`: read a catalogue, clean it, split it and save a Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from vlmrec.cli.base import app, console, floats, one_of, output_folder, reports_errors, setup_logging
from vlmrec.data.formats import FORMATS
from vlmrec.data.splits import SPLIT_METHODS
from vlmrec.errors import ConfigError, option_error

if TYPE_CHECKING:
    from vlmrec.data.spec import DatasetSpec


@app.command()
@reports_errors
def prepare(
    out: Path = typer.Option(..., help="Folder to write the prepared dataset to."),
    format: str = typer.Option(
        "table",
        "--format",
        help=f"Reader: {one_of(FORMATS)} (docs/data.md).",
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
        help=f"{one_of(SPLIT_METHODS)}: random (per-user ratios), loo (leave-one-out by time), temporal "
        "(global cut), cold-items (a seeded fraction of items held out of training; see --cold-fraction).",
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
    # long: two thirds of it are the option declarations (typer reads them from the signature)
    setup_logging(verbose)
    from vlmrec.data.prepare import prepare_dataset

    output_folder(out, "dataset")
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
        ratios=floats(ratios),
        seed=seed,
        cold_fraction=cold_fraction,
        sep=sep,
        encoding=encoding,
    )
    ds = prepare_dataset(spec, out)
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
