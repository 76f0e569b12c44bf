"""BPR-MF (Rendle et al. 2009).

x_ui = <p_u, q_i>;  L = -sum_{(u,i,j)} ln sigma(x_ui - x_uj) + lambda (||p_u||^2 + ||q_i||^2 + ||q_j||^2) / 2
"""

from __future__ import annotations

from torch import nn

from vlmrec.models.base import register
from vlmrec.models.torch_base import TorchRecommender, bpr_loss, l2


@register("bprmf")
class BPRMF(TorchRecommender):
    def __init__(
        self,
        embedding_dim: int = 64,
        reg: float = 1e-4,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 5e-3,
        patience: int = 10,
        eval_every: int = 1,
        device: str = "auto",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.reg = reg
        self._init_training(epochs, batch_size, lr, patience, eval_every, device)

    def _setup(self, dataset, features, rng):
        self.net = nn.ModuleDict(
            {
                "user": nn.Embedding(dataset.n_users, self.embedding_dim),
                "item": nn.Embedding(dataset.n_items, self.embedding_dim),
            }
        )
        for emb in self.net.values():
            nn.init.xavier_uniform_(emb.weight)  # as LightGCN/MMRec: small init, fast early learning

    def _batch_loss(self, users, pos, neg):
        u, i, j = self.net["user"](users), self.net["item"](pos), self.net["item"](neg)
        return bpr_loss(u, i, j) + self.reg * l2(u, i, j)

    def _final_embeddings(self):
        return self.net["user"].weight, self.net["item"].weight
