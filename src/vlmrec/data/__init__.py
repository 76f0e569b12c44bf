"""Data: readers, cleaning, seeded splits, the planted catalogue and the Dataset object."""

from vlmrec.data.dataset import Dataset, build_dataset
from vlmrec.data.formats import FORMATS
from vlmrec.data.prepare import prepare_dataset

__all__ = ["Dataset", "build_dataset", "prepare_dataset", "FORMATS"]
