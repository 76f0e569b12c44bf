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
Scores: <p(e_u), p(e_i)>. Validation typically plateaus for some epochs before the bootstrap
takes off, hence the longer default patience.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlmrec.models.base import register
from vlmrec.models.content import modality_matrices
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.torch_base import TorchRecommender


def _neg_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(a, b, dim=-1)


@register("bm3")
class BM3(TorchRecommender):
    uses_features = True

    def __init__(
        self,
        embedding_dim: int = 64,
        n_layers: int = 1,
        dropout: float = 0.3,
        cl_weight: float = 2.0,
        reg_weight: float = 0.01,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 5e-3,
        patience: int = 30,
        eval_every: int = 1,
        device: str = "auto",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.dropout = dropout
        self.cl_weight = cl_weight
        self.reg_weight = reg_weight
        self._init_training(epochs, batch_size, lr, patience, eval_every, device)

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)
        self.net = nn.ModuleDict(
            {
                "user": nn.Embedding(dataset.n_users, self.embedding_dim),
                "item": nn.Embedding(dataset.n_items, self.embedding_dim),
                "proj": nn.ModuleList([nn.Linear(x.shape[1], self.embedding_dim) for x in mats]),
                "predictor": nn.Linear(self.embedding_dim, self.embedding_dim),
            }
        )
        for i, x in enumerate(mats):
            self.net.register_buffer(f"feat{i}", torch.as_tensor(x))
        self._n_feats = len(mats)
        for emb in (self.net["user"], self.net["item"]):
            nn.init.xavier_uniform_(emb.weight)
        for layer in [*self.net["proj"], self.net["predictor"]]:
            nn.init.xavier_normal_(layer.weight)

    def _encode(self):
        ego = torch.cat([self.net["user"].weight, self.net["item"].weight])
        e = propagate(self.adj_, ego, self.n_layers)
        return e[: self.n_users_], e[self.n_users_ :] + self.net["item"].weight

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._encode()
        u, i = eu[users], ei[pos]
        with torch.no_grad():
            u_target = F.dropout(u.clone(), self.dropout)
            i_target = F.dropout(i.clone(), self.dropout)
        pred = self.net["predictor"]
        loss = (_neg_cos(pred(u), i_target) + _neg_cos(pred(i), u_target)).mean()
        cl = 0.0
        for m in range(self._n_feats):
            z = self.net["proj"][m](getattr(self.net, f"feat{m}")[pos])
            with torch.no_grad():
                z_target = F.dropout(z.clone(), self.dropout)
            z_online = pred(z)
            cl = cl + (_neg_cos(z_online, i_target) + _neg_cos(z_online, z_target)).mean()
        reg = (eu.norm() + ei.norm()) / ei.shape[0]
        return loss + self.cl_weight * cl + self.reg_weight * reg

    def _final_embeddings(self):
        eu, ei = self._encode()
        return self.net["predictor"](eu), self.net["predictor"](ei)
