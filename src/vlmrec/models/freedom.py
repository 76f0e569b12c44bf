"""FREEDOM (Zhou & Shen, MM 2023): freeze and denoise graph structures, as in the reference code
(MMRec's FREEDOM).

Frozen item-item graph: per modality m, S_m = kNN_k(cos(f_i, f_j)) with binary edges and the
  item itself among its k (its similarity is 1), normalised D^-1/2 S D^-1/2 (D the row sums);
  S = sum_m alpha_m S_m (alpha: `image_weight` for image-like sets, the rest shared equally),
  built once from the initial features.
Item content view: h_i = (S^L E_item)_i  (L = n_mm_layers, over item ID embeddings).
Denoised user-item graph: each epoch keep (1 - dropout) of the edges, sampled without replacement
  with probability proportional to 1 / sqrt(d_u d_i) (degree-sensitive pruning), renormalised;
  LightGCN on it gives (e_u, e_i). Final: user e_u, item e_i + h_i; scoring uses the full graph.
Loss: BPR(e_u, e_i + h_i) + reg_weight * sum_m BPR(e_u, W_m f_m + b_m) (modality projection
  losses; the raw features f_m are trainable, as in the reference) (+ an optional L2 term `reg`,
  EmbLoss form, 0 by default as in the reference).
Cold item (no training interaction): the LightGCN part e_i, its untrained ID row, is zeroed at
  scoring; it is scored by the item-graph view alone, x_ui = <e_u, h_i>, h_i = (S^L E_item)_i
  built from its content neighbours in S.
Option `cold_items="neighbours"` (not the reference; docs/cold_start.md): a cold item's final
  embedding is the similarity-weighted mean of those of its 10 most content-similar warm items.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from vlmrec.features.featureset import FeatureSet
from vlmrec.models.cold import ColdRule, NeighbourCold
from vlmrec.models.content import MultimodalNet, modality_matrices
from vlmrec.models.graph import knn_normalised, sym_normalise, to_torch_sparse
from vlmrec.models.lightgcn import propagate
from vlmrec.models.params import ContentKnnK, EmbeddingDim, TrainFeatures, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, emb_loss


def modality_weights(features: list[FeatureSet], image_weight: float) -> list[float]:
    """`image_weight` for image-modality sets, the remaining mass shared by the others
    (MMRec's mm_image_weight); equal weights when all sets share one modality."""
    fsets = sorted(features, key=lambda f: f.name)
    is_image = [str(f.manifest.get("modality", "")) == "image" for f in fsets]
    if all(is_image) or not any(is_image):
        return [1.0 / len(fsets)] * len(fsets)
    n_img, n_other = sum(is_image), len(fsets) - sum(is_image)
    return [image_weight / n_img if im else (1 - image_weight) / n_other for im in is_image]


def mixed_item_graph(features: list[FeatureSet], k: int, image_weight: float) -> sp.csr_matrix:
    """S = sum_m alpha_m N(kNN_k(features_m)), self included."""
    mats = modality_matrices(features)
    weights = modality_weights(features, image_weight)
    return sum(w * knn_normalised(x, k) for w, x in zip(weights, mats)).tocsr()


class FREEDOMNet(MultimodalNet):
    """ID embeddings, raw features (trainable by default) and their projections to `dim`."""

    def __init__(self, n_users: int, mats: list, dim: int, train_features: bool) -> None:
        super().__init__(n_users, mats, dim, dim, train_features)


@register("freedom")
class FREEDOM(NeighbourCold, TorchRecommender):
    net: FREEDOMNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        knn_k: ContentKnnK = 10,
        n_mm_layers: Annotated[
            int, Field(ge=0, description="propagation layers on the item-item (content) graph")
        ] = 1,
        n_ui_layers: UserItemLayers = 2,
        dropout: Annotated[
            float, Field(ge=0, lt=1, description="share of user-item edges dropped per epoch")
        ] = 0.8,
        image_weight: Annotated[
            float, Field(ge=0, le=1, description="weight of image-like feature sets in the frozen item graph")
        ] = 0.1,
        reg_weight: Annotated[
            float, Field(ge=0, description="weight of the modality projection BPR losses")
        ] = 1e-4,
        reg: Annotated[
            float, Field(ge=0, description="optional extra L2 (EmbLoss form; 0 as the reference)")
        ] = 0.0,
        train_features: TrainFeatures = True,
        cold_items: ColdRule = "reference",
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.cold_items = cold_items
        self.knn_k = knn_k
        self.n_mm_layers = n_mm_layers
        self.n_ui_layers = n_ui_layers
        self.dropout = dropout
        self.image_weight = image_weight
        self.reg_weight = reg_weight
        self.reg = reg
        self.train_features = train_features
        self.training = training

    def _setup(self, dataset, features, rng):
        fsets = self._require_features(features, dataset)
        self._prepare_cold_neighbours(modality_matrices(fsets), self.cold_items_)
        self._rng = rng
        k = min(self.knn_k, dataset.n_items)
        self.item_graph_ = to_torch_sparse(mixed_item_graph(fsets, k, self.image_weight), self.device_)
        coo = dataset.matrix("train").tocoo()
        self._edges = (coo.row.astype(np.int64), coo.col.astype(np.int64))
        du = np.bincount(coo.row, minlength=dataset.n_users).astype(np.float64)
        di = np.bincount(coo.col, minlength=dataset.n_items).astype(np.float64)
        p = 1.0 / np.sqrt(du[coo.row] * di[coo.col])
        self._edge_p = p / p.sum()
        self.net = FREEDOMNet(
            dataset.n_users, modality_matrices(fsets), self.embedding_dim, self.train_features
        )
        self._full_adj = self._adjacency(np.arange(len(p)))
        self.adj_ = self._full_adj

    def _adjacency(self, keep: np.ndarray) -> torch.Tensor:
        rows, cols = self._edges[0][keep], self._edges[1][keep]
        r = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(self.n_users_, self.n_items_)
        )
        return to_torch_sparse(sym_normalise(sp.bmat([[None, r], [r.T, None]])), self.device_)

    def _on_epoch_start(self, epoch):
        if self.dropout <= 0:
            self.adj_ = self._full_adj
            return
        n = len(self._edge_p)
        keep = self._rng.choice(n, size=int(n * (1.0 - self.dropout)), replace=False, p=self._edge_p)
        self.adj_ = self._adjacency(np.sort(keep))

    def _parts(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(e_u, e_i of the user-item propagation, h of the item graph)."""
        h = self.net.item
        for _ in range(self.n_mm_layers):
            h = torch.sparse.mm(self.item_graph_, h)
        e = propagate(adj, torch.cat([self.net.user, self.net.item]), self.n_ui_layers)
        return e[: self.n_users_], e[self.n_users_ :], h

    def _forward(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eu, ei, h = self._parts(adj)
        return eu, ei + h

    def _cold_final_embeddings(self):
        eu, ei, h = self._parts(self._full_adj)
        ei = ei.clone()
        ei[torch.as_tensor(self.cold_items_, device=ei.device)] = 0
        return self._neighbour_cold(eu, ei + h, self.cold_items_)

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._forward(self.adj_)
        loss = bpr_loss(eu[users], ei[pos], ei[neg])
        for feats, proj in zip(self.net.features, self.net.project):
            z = proj(feats)
            loss = loss + self.reg_weight * bpr_loss(eu[users], z[pos], z[neg])
        if self.reg:
            loss = loss + self.reg * emb_loss(self.net.user[users], self.net.item[pos], self.net.item[neg])
        return loss

    def _final_embeddings(self):
        # inference uses the full (unpruned) user-item graph, as in the paper
        return self._forward(self._full_adj)
