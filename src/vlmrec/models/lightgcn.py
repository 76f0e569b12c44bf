"""LightGCN (He et al. 2020), as in MMRec's LightGCN.

E^(l+1) = D^-1/2 A D^-1/2 E^(l) on the user-item graph A = [[0, R], [R^T, 0]];
final embedding e = 1/(L+1) sum_{l=0..L} E^(l); x_ui = <e_u, e_i>;
L = BPR(e_u, e_i, e_j) + reg * (||E0_u|| + ||E0_i|| + ||E0_j||) / B  (EmbLoss on the layer-0 rows).
Initialisation: Xavier-uniform user and item matrices.
Cold item (no training interaction, no graph edge): the lowest score, below every warm item
  (its final embedding would be its untrained layer-0 row / (L+1); `demote_cold_factors`).
"""

from __future__ import annotations

import torch
from torch import nn

from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.params import EmbeddingDim, EmbLossReg, GraphLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, emb_loss


def propagate(adj: torch.Tensor, e0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of the layer outputs E^(0..L) of repeated sparse propagation."""
    layers = [e0]
    e = e0
    for _ in range(n_layers):
        e = torch.sparse.mm(adj, e)
        layers.append(e)
    return torch.stack(layers).mean(0)


class LightGCNNet(nn.Module):
    """Layer-0 user and item embeddings."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim)))


@register("lightgcn")
class LightGCN(TorchRecommender):
    net: LightGCNNet

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_layers: GraphLayers = 2,
        reg: EmbLossReg = 1e-4,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.reg = reg
        self.training = training

    def _setup(self, dataset, features, rng):
        self.net = LightGCNNet(dataset.n_users, dataset.n_items, self.embedding_dim)
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)

    def _propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        e = propagate(self.adj_, torch.cat([self.net.user, self.net.item]), self.n_layers)
        return e[: self.n_users_], e[self.n_users_ :]

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._propagated()
        reg = emb_loss(self.net.user[users], self.net.item[pos], self.net.item[neg])
        return bpr_loss(eu[users], ei[pos], ei[neg]) + self.reg * reg

    def _final_embeddings(self):
        return self._propagated()
