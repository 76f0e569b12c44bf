"""LATTICE (Zhang et al., MM 2021): mining latent item-item structure from modalities, as in the
reference code (MMRec's LATTICE with cf_model=lightgcn).

Per modality m with raw features F_m (trainable, initialised from the FeatureSet):
  prior graph   S_m = N(kNN_k(cos(F_m^0)))      frozen, built once from the initial features
  learned graph L_m = kNN_k(cos(W_m F_m + b_m))  rebuilt each epoch
  kNN_k keeps, per row, the k largest cosine similarities *including the item itself*, as
  weights; N(S) = D^-1/2 S D^-1/2 with D the row sums.
With modality weights w = softmax(alpha) (alpha initialised equal), applied *before* the
normalisation of the learned graph:
  A = (1 - lambda) N(sum_m w_m L_m) + lambda sum_m w_m S_m      (one modality: no weights)
Item view h = A^n_layers E_item. User-item propagation on P = D^-1 (A_ui + I) (row-normalised
with self-loops, the reference code's choice; `ui_norm="symmetric"` uses LightGCN's
D^-1/2 A D^-1/2 instead), n_ui_layers layers, mean over layers -> (e_u, e_i); final item
e_i + h / ||h||; x_ui = <e_u, e_i + h_i/||h_i||>.
L = BPR + reg * (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / (2 * batch_size) on the final embeddings of
the batch (the reference regularises these, divided by the configured batch size).
The learned graph is built with gradient on the first batch of each epoch and reused, detached,
for the rest of it; scoring rebuilds it from the current weights. Learning rate decays as
lr * 0.96^(epoch/50) (the reference's scheduler).
Cold item (no training interaction): the user-item (LightGCN) part e_i, its untrained ID row, is
zeroed at scoring; it is scored by the item-graph view alone, x_ui = <e_u, h_i/||h_i||>, h built
from its content neighbours in A.
Option `cold_items="neighbours"` (not the reference; docs/cold_start.md): a cold item's final
embedding is the similarity-weighted mean of those of its 10 most content-similar warm items.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.cold import ColdRule, NeighbourCold
from vlmrec.models.content import MultimodalNet, modality_matrices
from vlmrec.models.graph import (
    knn_entries,
    knn_normalised,
    to_torch_sparse,
    user_item_adjacency,
    user_item_adjacency_self_loops,
)
from vlmrec.models.lightgcn import propagate
from vlmrec.models.params import ContentKnnK, EmbeddingDim, GraphLayers, TrainFeatures, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, half_squared_loss

UINorm = Literal["random_walk", "symmetric"]


def sym_normalised_values(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int) -> torch.Tensor:
    """Values of D^-1/2 S D^-1/2 (D the row sums of S, duplicates summed), differentiable."""
    deg = torch.zeros(n, dtype=vals.dtype, device=vals.device).index_add(0, rows, vals)
    inv = torch.where(deg > 0, deg.clamp_min(1e-30).pow(-0.5), torch.zeros_like(deg))
    return inv[rows] * vals * inv[cols]


class LATTICENet(MultimodalNet):
    """The shared multimodal parameters (projections to `feat_embed_dim`) plus the modality
    weights alpha."""

    def __init__(self, n_users: int, mats: list, dim: int, feat_embed_dim: int, train_features: bool):
        super().__init__(n_users, mats, dim, feat_embed_dim, train_features)
        self.modal_weight = nn.Parameter(torch.full((len(mats),), 0.5))


@register("lattice")
class LATTICE(NeighbourCold, TorchRecommender):
    net: LATTICENet
    uses_features = True
    _graph: torch.Tensor | None  # the learned item graph of this epoch (None: rebuild it)

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        feat_embed_dim: Annotated[
            int, Field(ge=1, description="size of the projected modality features")
        ] = 64,
        knn_k: ContentKnnK = 10,
        n_layers: GraphLayers = 1,
        n_ui_layers: UserItemLayers = 2,
        lambda_coeff: Annotated[
            float, Field(ge=0, le=1, description="weight of the frozen prior graph against the learned one")
        ] = 0.9,
        reg: Annotated[
            float,
            Field(
                ge=0,
                description="L2 weight on the final embeddings: sum of squares / (2 x batch size), as the reference",
            ),
        ] = 1e-4,
        ui_norm: Annotated[
            UINorm,
            Field(description="user-item propagation matrix: D^-1 (A + I) (reference) or D^-1/2 A D^-1/2"),
        ] = "random_walk",
        train_features: TrainFeatures = True,
        cold_items: ColdRule = "reference",
        training: TrainingParams = TrainingParams(lr_decay=0.96),  # the reference's scheduler
    ) -> None:
        self.embedding_dim = embedding_dim
        self.cold_items = cold_items
        self.feat_embed_dim = feat_embed_dim
        self.knn_k = knn_k
        self.n_layers = n_layers
        self.n_ui_layers = n_ui_layers
        self.lambda_coeff = lambda_coeff
        self.reg = reg
        self.ui_norm = ui_norm
        self.train_features = train_features
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        self._prepare_cold_neighbours(mats, self.cold_items_)
        self.k_ = min(self.knn_k, dataset.n_items)
        self.priors_ = [
            to_torch_sparse(knn_normalised(x, self.k_, weighted=True), self.device_).coalesce() for x in mats
        ]
        train = dataset.matrix("train")
        ui = (
            user_item_adjacency_self_loops(train)
            if self.ui_norm == "random_walk"
            else user_item_adjacency(train)
        )
        self.adj_ = to_torch_sparse(ui, self.device_)
        self.net = LATTICENet(
            dataset.n_users, mats, self.embedding_dim, self.feat_embed_dim, self.train_features
        )
        self._graph = None

    def _on_epoch_start(self, epoch):
        self._graph = None  # rebuild the learned graph, with gradient, on the next batch

    def item_graph(self) -> torch.Tensor:
        """A = (1 - lambda) N(sum_m w_m L_m) + lambda sum_m w_m S_m, as a sparse COO tensor."""
        net, n = self.net, self.n_items_
        single = len(self.priors_) == 1
        w = torch.softmax(net.modal_weight, 0)
        rows, cols, vals = [], [], []
        for m, (feats, proj) in enumerate(zip(net.features, net.project)):
            r, c, v = knn_entries(proj(feats), self.k_)
            rows.append(r)
            cols.append(c)
            vals.append(v if single else w[m] * v)
        r, c = torch.cat(rows), torch.cat(cols)
        learned = sym_normalised_values(r, c, torch.cat(vals), n)
        all_rows, all_cols, all_vals = [r], [c], [(1 - self.lambda_coeff) * learned]
        for m, prior in enumerate(self.priors_):
            idx = prior.indices()
            scale = self.lambda_coeff if single else self.lambda_coeff * w[m]
            all_rows.append(idx[0])
            all_cols.append(idx[1])
            all_vals.append(scale * prior.values())
        idx = torch.stack([torch.cat(all_rows), torch.cat(all_cols)])
        return torch.sparse_coo_tensor(idx, torch.cat(all_vals), (n, n), check_invariants=False).coalesce()

    def _parts(self, graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(e_u, e_i of the user-item propagation, h / ||h|| of the item graph)."""
        h = self.net.item
        for _ in range(self.n_layers):
            h = torch.sparse.mm(graph, h)
        e = propagate(self.adj_, torch.cat([self.net.user, self.net.item]), self.n_ui_layers)
        return e[: self.n_users_], e[self.n_users_ :], F.normalize(h, dim=1)

    def _forward(self, graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eu, ei, h = self._parts(graph)
        return eu, ei + h

    def _cold_final_embeddings(self):
        eu, ei, h = self._parts(self.item_graph())
        ei = ei.clone()
        ei[torch.as_tensor(self.cold_items_, device=ei.device)] = 0
        return self._neighbour_cold(eu, ei + h, self.cold_items_)

    def _batch_loss(self, users, pos, neg):
        if self._graph is None:
            graph = self.item_graph()
            self._graph = graph.detach()
        else:
            graph = self._graph
        eu, ei = self._forward(graph)
        u, i, j = eu[users], ei[pos], ei[neg]
        return bpr_loss(u, i, j) + self.reg * half_squared_loss(u, i, j, batch_size=self.training.batch_size)

    def _final_embeddings(self):
        return self._forward(self.item_graph())
