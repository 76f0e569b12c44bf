"""Shared PyTorch training loop: seeded BPR-triple epochs, early stopping, best-state restore.

The loop follows MMRec's trainer, the reference for the six published models here: Adam,
`lr` decayed per epoch as lr * lr_decay ** (epoch / lr_decay_step) (MMRec's
`learning_rate_scheduler: [lr_decay, lr_decay_step]`; 1.0 = constant), one negative per positive
drawn from items seen in training (`negatives="train"`), early stopping on the validation metric
after `patience` evaluations without improvement, the best state restored.

Cold items (no training interaction, `cold_items_`) are never scored from their untrained ID
embedding: every export used for validation and for the final model applies the model's cold
rule (`_cold_final_embeddings`; default: the lowest score, see `demote_cold_factors`). A model
without cold items exports exactly what it did before. `_export()` called alone gives the raw
reference factors (what tests/test_model_equations.py compares with the papers' equations).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Annotated

import numpy as np
import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from vlmrec.data.dataset import Dataset
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import FactorModel, Validator
from vlmrec.models.cold import cold_items_of, demote_cold_factors
from vlmrec.models.sampling import NegativePool, negative_pool, sample_triples
from vlmrec.provenance import seed_everything

log = logging.getLogger(__name__)


def _check_device(value: str) -> str:
    if value not in ("auto", "cpu") and not value.startswith("cuda"):
        raise ValueError(f"device {value!r}: choose auto, cpu or cuda[:N]")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {value!r}: no CUDA device is available here (torch {torch.__version__}); use auto or cpu"
        )
    return value


class TrainingParams(BaseModel):
    """The training loop's parameters, shared by every torch model (MMRec's defaults).

    A torch model takes them as one argument, `training: TrainingParams = TrainingParams()`; a
    model whose reference trains otherwise says so in its default (LATTICE:
    `TrainingParams(lr_decay=0.96)`). Configs and the command line give them flat, beside the
    model's own hyperparameters (`lr: 0.01`), see `models/params.py`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: Annotated[
        int, Field(ge=1, description="maximum training epochs (early stopping may end sooner)")
    ] = 1000
    batch_size: Annotated[int, Field(ge=1, description="training triples (or pairs) per optimiser step")] = (
        2048
    )
    lr: Annotated[float, Field(gt=0, description="Adam learning rate")] = 1e-3
    patience: Annotated[
        int, Field(ge=1, description="validation rounds without improvement before early stopping")
    ] = 20
    eval_every: Annotated[int, Field(ge=1, description="epochs between validation rounds")] = 1
    lr_decay: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description="learning rate x lr_decay ** (epoch / lr_decay_step) (MMRec's scheduler; 1 = constant)",
        ),
    ] = 1.0
    lr_decay_step: Annotated[int, Field(ge=1, description="epochs per lr_decay step")] = 50
    negatives: Annotated[
        NegativePool,
        Field(
            description="where BPR negatives come from: items seen in training (the references) or all items"
        ),
    ] = "train"
    device: Annotated[
        str, AfterValidator(_check_device), Field(description="auto (CUDA when available), cpu or cuda[:N]")
    ] = "auto"


def resolve_device(device: str) -> torch.device:
    """The torch device of a `device` setting (auto: CUDA when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchRecommender(FactorModel, ABC):
    """Subclasses implement `_setup` (build `self.net` and buffers), `_batch_loss` and
    `_final_embeddings`, and keep their `TrainingParams` argument as `self.training`; this class
    owns the loop. After fit: `history_` holds the mean training loss per epoch and
    `valid_history_` the validation scores."""

    net: torch.nn.Module  # built by `_setup`
    training: TrainingParams  # the `training` argument of the subclass's __init__

    @abstractmethod
    def _setup(
        self, dataset: Dataset, features: dict[str, FeatureSet] | None, rng: np.random.Generator
    ) -> None:
        """Build `self.net` (and graphs, buffers) for the dataset; `rng` is the seeded generator."""

    @abstractmethod
    def _batch_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch of (user, positive, negative) triples."""

    @abstractmethod
    def _final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item factors whose dot products are the model's scores (no cold rule)."""

    def _cold_final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item factors with the model's cold-item rule applied (`cold_items_` is not
        empty). Default, for ID-only models: every cold item below every warm one."""
        u, i = self._final_embeddings()
        return demote_cold_factors(u, i, self.cold_items_)

    def _on_epoch_start(self, epoch: int) -> None:
        """Hook for per-epoch work (e.g. FREEDOM's edge pruning)."""

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> TorchRecommender:
        rng = seed_everything(seed)
        t = self.training
        self.device_ = resolve_device(t.device)
        self.n_users_, self.n_items_ = dataset.n_users, dataset.n_items
        self.cold_items_ = cold_items_of(dataset)
        train = dataset.matrix("train")
        self._setup(dataset, features, rng)
        self.net.to(self.device_)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=t.lr)
        decay, step = t.lr_decay, t.lr_decay_step
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: decay ** (e / step))
        pool = negative_pool(train, t.negatives)
        self.history_: list[float] = []
        self.valid_history_: list[float] = []
        self.epoch_seconds_: list[float] = []  # training time per epoch, validation excluded
        self.lr_history_: list[float] = []  # learning rate used in each epoch
        best, best_state, bad_rounds = -math.inf, None, 0
        # progress only on a terminal: disable=None turns the bar off when stderr is not a TTY
        # (a log file, a pipe); at most one refresh a second, so a terminal that keeps every
        # refresh (a recorded session) gets a few lines per cell, not one per epoch
        bar = tqdm(range(t.epochs), desc=self.name, unit="epoch", leave=False, disable=None, mininterval=1.0)
        for epoch in bar:
            self.net.train()
            t_epoch = time.perf_counter()
            self._on_epoch_start(epoch)
            self.lr_history_.append(optimizer.param_groups[0]["lr"])
            users, pos, neg = sample_triples(train, rng, pool)
            total, n_batches = 0.0, 0
            for start in range(0, len(users), t.batch_size):
                sl = slice(start, start + t.batch_size)
                u, i, j = (torch.as_tensor(a[sl], device=self.device_) for a in (users, pos, neg))
                loss = self._batch_loss(u, i, j)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                n_batches += 1
            scheduler.step()
            self.history_.append(total / max(1, n_batches))
            self.epoch_seconds_.append(time.perf_counter() - t_epoch)
            postfix = {"loss": f"{self.history_[-1]:.4f}"}
            if validator is not None and (epoch + 1) % t.eval_every == 0:
                self._export(cold_rule=True)
                score = validator(self)
                self.valid_history_.append(score)
                postfix["valid"] = f"{score:.4f}"
                if score > best:
                    best, best_state, bad_rounds = score, copy.deepcopy(self.net.state_dict()), 0
                else:
                    bad_rounds += 1
                    if bad_rounds >= t.patience:
                        log.info("%s: early stop at epoch %d (best valid %.4f)", self.name, epoch + 1, best)
                        break
            bar.set_postfix(postfix, refresh=False)  # shown at the next (throttled) refresh
            log.debug("%s epoch %d %s", self.name, epoch + 1, postfix)
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.best_valid_ = best if best_state is not None else None
        self.epochs_run_ = len(self.history_)
        self._export(cold_rule=True)
        return self

    def _export(self, cold_rule: bool = False) -> None:
        """Write `user_factors_` / `item_factors_` from the network; `cold_rule=True` (fit and
        validation) applies the cold-item rule when there are cold items."""
        self.net.eval()
        with torch.no_grad():
            if cold_rule and len(self.cold_items_):
                u, i = self._cold_final_embeddings()
            else:
                u, i = self._final_embeddings()
        self.user_factors_ = u.detach().float().cpu().numpy()
        self.item_factors_ = i.detach().float().cpu().numpy()


def bpr_loss(u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """-mean ln sigma(<u,i> - <u,j>). (MMRec's BPRLoss writes -ln(1e-10 + sigma(.)); the two
    differ only where sigma < 1e-8, and logsigmoid does not underflow there.)"""
    return -torch.nn.functional.logsigmoid((u * i).sum(-1) - (u * j).sum(-1)).mean()


def emb_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """MMRec's EmbLoss: the sum of the (unsquared) Frobenius norms of the tensors divided by the
    number of rows of the last one. MMRec's published `reg_weight` grids assume this form."""
    return _total(t.norm(p=2) for t in tensors) / tensors[-1].shape[0]


def half_squared_loss(*tensors: torch.Tensor, batch_size: int) -> torch.Tensor:
    """sum ||t||^2 / 2 over the tensors, divided by the configured batch size (the LATTICE
    reference's regulariser; it divides by the configured size even on a short last batch)."""
    return _total(t.pow(2).sum() for t in tensors) / (2 * batch_size)


def _total(terms: Iterator[torch.Tensor]) -> torch.Tensor:
    """Left-to-right sum of scalar tensors (what builtin `sum` computes, 0 + a being exactly a,
    typed as a Tensor)."""
    total = next(terms)
    for term in terms:
        total = total + term
    return total
