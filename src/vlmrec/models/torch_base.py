"""Shared PyTorch training loop: seeded BPR-triple epochs, early stopping, best-state restore."""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from vlmrec.data.dataset import Dataset
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import FactorModel, Validator
from vlmrec.models.sampling import sample_triples
from vlmrec.provenance import seed_everything

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchRecommender(FactorModel):
    """Subclasses implement `_setup` (build `self.net` and buffers), `_batch_loss` and
    `_final_embeddings`; this class owns the loop. After fit: `history_` holds the mean training
    loss per epoch and `valid_history_` the validation scores."""

    # subclasses call super().__init__ with these shared hyperparameters
    def _init_training(
        self, epochs: int, batch_size: int, lr: float, patience: int, eval_every: int, device: str
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.eval_every = eval_every
        self.device = device

    def _setup(
        self, dataset: Dataset, features: dict[str, FeatureSet] | None, rng: np.random.Generator
    ) -> None:
        raise NotImplementedError

    def _batch_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

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
        self.device_ = resolve_device(self.device)
        self.n_users_, self.n_items_ = dataset.n_users, dataset.n_items
        train = dataset.matrix("train")
        self._setup(dataset, features, rng)
        self.net.to(self.device_)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.history_: list[float] = []
        self.valid_history_: list[float] = []
        self.epoch_seconds_: list[float] = []  # training time per epoch, validation excluded
        best, best_state, bad_rounds = -math.inf, None, 0
        bar = tqdm(range(self.epochs), desc=self.name, unit="epoch", leave=False, disable=None)
        for epoch in bar:
            self.net.train()
            t_epoch = time.perf_counter()
            self._on_epoch_start(epoch)
            users, pos, neg = sample_triples(train, rng)
            total, n_batches = 0.0, 0
            for start in range(0, len(users), self.batch_size):
                sl = slice(start, start + self.batch_size)
                u, i, j = (torch.as_tensor(a[sl], device=self.device_) for a in (users, pos, neg))
                loss = self._batch_loss(u, i, j)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                n_batches += 1
            self.history_.append(total / max(1, n_batches))
            self.epoch_seconds_.append(time.perf_counter() - t_epoch)
            postfix = {"loss": f"{self.history_[-1]:.4f}"}
            if validator is not None and (epoch + 1) % self.eval_every == 0:
                self._export()
                score = validator(self)
                self.valid_history_.append(score)
                postfix["valid"] = f"{score:.4f}"
                if score > best:
                    best, best_state, bad_rounds = score, copy.deepcopy(self.net.state_dict()), 0
                else:
                    bad_rounds += 1
                    if bad_rounds >= self.patience:
                        log.info("%s: early stop at epoch %d (best valid %.4f)", self.name, epoch + 1, best)
                        break
            bar.set_postfix(postfix)
            log.debug("%s epoch %d %s", self.name, epoch + 1, postfix)
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.best_valid_ = best if best_state is not None else None
        self.epochs_run_ = len(self.history_)
        self._export()
        return self

    def _export(self) -> None:
        self.net.eval()
        with torch.no_grad():
            u, i = self._final_embeddings()
        self.user_factors_ = u.detach().float().cpu().numpy()
        self.item_factors_ = i.detach().float().cpu().numpy()


def bpr_loss(u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """-mean log sigmoid(<u,i> - <u,j>)."""
    return -torch.nn.functional.logsigmoid((u * i).sum(-1) - (u * j).sum(-1)).mean()


def l2(*tensors: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of half the squared L2 norm (the usual BPR regulariser)."""
    return sum(t.pow(2).sum() for t in tensors) / (2 * tensors[0].shape[0])
