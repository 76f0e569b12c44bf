"""BM3 (Zhou et al., WWW 2023): bootstrap latent representations for multimodal recommendation.

No negative sampling. LightGCN on the user-item graph gives e_u, and e_i (+ the item ID
embedding); each modality is projected, z_m = W_m f_m. A shared predictor p(.) makes the online
view; the target view is a dropout-perturbed, stop-gradient copy (the bootstrap, no target
network). For a batch of observed (u, i):
  L_rec   = 1 - cos(p(e_u), sg(drop(e_i))) + 1 - cos(p(e_i), sg(drop(e_u)))
  L_align = sum_m 1 - cos(p(z_m,i), sg(drop(e_i)))          (inter-modality alignment)
  L_mask  = sum_m 1 - cos(p(z_m,i), sg(drop(z_m,i)))        (masked feature reconstruction)
  L = L_rec + cl_weight (L_align + L_mask) + reg_weight (||E_user||_F + ||E_item||_F) / n_items
  (the regulariser on the encoder outputs, as in the reference implementation)
The raw features f_m are trainable (`train_features`), as in the reference (MMRec's BM3).
Scores: <p(e_u), p(e_i)>. Validation typically plateaus for some epochs before the bootstrap
takes off, hence the longer default patience.
Cold item (no training interaction): p(e_i) would come from its untrained ID row, so it is
replaced by the mean over modalities of p(W_m f_m,i) (the alignment loss trains the projected
content to predict the item's embedding).
Option `cold_items="neighbours"` (not the reference; docs/cold_start.md): a cold item's final
embedding is the similarity-weighted mean of those of its 10 most content-similar warm items.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.cold import ColdRule, NeighbourCold
from vlmrec.models.content import MultimodalNet, modality_matrices
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.params import EmbeddingDim, GraphLayers, TrainFeatures
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams


def _neg_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(a, b, dim=-1)


class BM3Net(MultimodalNet):
    """The shared multimodal parameters plus the predictor; projections and predictor
    Xavier-normal, as in the reference."""

    def __init__(self, n_users: int, mats: list, dim: int, train_features: bool) -> None:
        super().__init__(n_users, mats, dim, dim, train_features)
        self.predictor = nn.Linear(dim, dim)
        for layer in [*self.project, self.predictor]:
            nn.init.xavier_normal_(layer.weight)


@register("bm3")
class BM3(NeighbourCold, TorchRecommender):
    net: BM3Net
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_layers: GraphLayers = 1,
        dropout: Annotated[float, Field(ge=0, lt=1, description="dropout of the target view")] = 0.3,
        cl_weight: Annotated[
            float, Field(ge=0, description="weight of the alignment and masked-reconstruction losses")
        ] = 2.0,
        reg_weight: Annotated[float, Field(ge=0, description="L2 weight on the encoder outputs")] = 0.01,
        train_features: TrainFeatures = True,
        cold_items: ColdRule = "reference",
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.cold_items = cold_items
        self.n_layers = n_layers
        self.dropout = dropout
        self.cl_weight = cl_weight
        self.reg_weight = reg_weight
        self.train_features = train_features
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        self._prepare_cold_neighbours(mats, self.cold_items_)
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)
        self.net = BM3Net(dataset.n_users, mats, self.embedding_dim, self.train_features)

    def _encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        e = propagate(self.adj_, torch.cat([self.net.user, self.net.item]), self.n_layers)
        return e[: self.n_users_], e[self.n_users_ :] + self.net.item

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._encode()
        u, i = eu[users], ei[pos]
        with torch.no_grad():
            u_target = F.dropout(u.clone(), self.dropout)
            i_target = F.dropout(i.clone(), self.dropout)
        pred = self.net.predictor
        loss = (_neg_cos(pred(u), i_target) + _neg_cos(pred(i), u_target)).mean()
        cl = 0.0
        for feats, proj in zip(self.net.features, self.net.project):
            z = proj(feats[pos])
            with torch.no_grad():
                z_target = F.dropout(z.clone(), self.dropout)
            z_online = pred(z)
            cl = cl + (_neg_cos(z_online, i_target) + _neg_cos(z_online, z_target)).mean()
        reg = (eu.norm() + ei.norm()) / ei.shape[0]
        return loss + self.cl_weight * cl + self.reg_weight * reg

    def _final_embeddings(self):
        eu, ei = self._encode()
        return self.net.predictor(eu), self.net.predictor(ei)

    def _cold_final_embeddings(self):
        pu, pi = self._final_embeddings()
        cold = torch.as_tensor(self.cold_items_, device=pi.device)
        pred = self.net.predictor
        content = [pred(proj(feats[cold])) for feats, proj in zip(self.net.features, self.net.project)]
        pi = pi.clone()
        pi[cold] = torch.stack(content).mean(0)
        return self._neighbour_cold(pu, pi, self.cold_items_)
