"""LightGCN (He et al. 2020).

E^(l+1) = D^-1/2 A D^-1/2 E^(l) on the user-item graph A = [[0, R], [R^T, 0]];
final embedding e = 1/(L+1) sum_{l=0..L} E^(l); x_ui = <e_u, e_i>; BPR loss with L2 on E^(0).
"""

from __future__ import annotations

import torch
from torch import nn

from vlmrec.models.base import register
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.torch_base import TorchRecommender, bpr_loss, l2


def propagate(adj: torch.Tensor, e0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of the layer outputs E^(0..L) of repeated sparse propagation."""
    layers = [e0]
    e = e0
    for _ in range(n_layers):
        e = torch.sparse.mm(adj, e)
        layers.append(e)
    return torch.stack(layers).mean(0)


@register("lightgcn")
class LightGCN(TorchRecommender):
    def __init__(
        self,
        embedding_dim: int = 64,
        n_layers: int = 2,
        reg: float = 1e-4,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 5e-3,
        patience: int = 10,
        eval_every: int = 1,
        device: str = "auto",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.reg = reg
        self._init_training(epochs, batch_size, lr, patience, eval_every, device)

    def _setup(self, dataset, features, rng):
        self.net = nn.Embedding(dataset.n_users + dataset.n_items, self.embedding_dim)
        nn.init.xavier_uniform_(self.net.weight[: dataset.n_users])
        nn.init.xavier_uniform_(self.net.weight[dataset.n_users :])
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)

    def _propagated(self):
        e = propagate(self.adj_, self.net.weight, self.n_layers)
        return e[: self.n_users_], e[self.n_users_ :]

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._propagated()
        w = self.net.weight
        reg = l2(w[users], w[self.n_users_ + pos], w[self.n_users_ + neg])
        return bpr_loss(eu[users], ei[pos], ei[neg]) + self.reg * reg

    def _final_embeddings(self):
        return self._propagated()
