"""LATTICE (Zhang et al., MM 2021): mining latent item-item structure from modalities.

Per modality m: a frozen initial graph A_m^0 = kNN_k(cos(f_i, f_j)), normalised; a learned graph
  Â_m = kNN_k(cos(W_m f_i, W_m f_j)) from trainable projections W_m, normalised; mixed
  A_m = lambda A_m^0 + (1 - lambda) Â_m (lambda = `lambda_coeff`, skip connection to the prior).
Modalities combine with learned softmax weights: A = sum_m softmax(alpha)_m A_m.
Item graph convolution over item ID embeddings: h = A^L E_item.
Collaborative backbone: LightGCN on the user-item graph gives (e_u, e_i); final item e_i + h/||h||.
Loss: BPR + L2. The learned graph is rebuilt (with gradient) on the first batch of each epoch and
reused, detached, for the rest of it, as in the reference implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlmrec.models.base import register
from vlmrec.models.content import modality_matrices
from vlmrec.models.graph import knn_normalised, to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.torch_base import TorchRecommender, bpr_loss, l2


def learned_knn_graph(z: torch.Tensor, k: int) -> torch.Tensor:
    """Sparse kNN graph of cosine similarities of rows of z (differentiable in the kept values),
    normalised by D^-1/2 on both sides with D the row sums."""
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T
    vals, cols = torch.topk(sim, k + 1, dim=1)  # includes self, like the reference
    vals = vals.clamp_min(0)
    deg = vals.sum(1).clamp_min(1e-12).pow(-0.5)
    rows = torch.arange(len(z), device=z.device).unsqueeze(1).expand_as(cols)
    norm_vals = deg[rows] * vals * deg[cols]
    idx = torch.stack([rows.reshape(-1), cols.reshape(-1)])
    return torch.sparse_coo_tensor(
        idx, norm_vals.reshape(-1), (len(z), len(z)), check_invariants=False
    ).coalesce()


@register("lattice")
class LATTICE(TorchRecommender):
    uses_features = True

    def __init__(
        self,
        embedding_dim: int = 64,
        feat_embed_dim: int = 64,
        knn_k: int = 10,
        n_layers: int = 1,
        n_ui_layers: int = 2,
        lambda_coeff: float = 0.9,
        reg: float = 1e-4,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 5e-3,
        patience: int = 10,
        eval_every: int = 1,
        device: str = "auto",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.feat_embed_dim = feat_embed_dim
        self.knn_k = knn_k
        self.n_layers = n_layers
        self.n_ui_layers = n_ui_layers
        self.lambda_coeff = lambda_coeff
        self.reg = reg
        self._init_training(epochs, batch_size, lr, patience, eval_every, device)

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        self.k_ = min(self.knn_k, dataset.n_items - 1)
        self.init_graphs_ = [to_torch_sparse(knn_normalised(x, self.k_), self.device_) for x in mats]
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)
        self.net = nn.ModuleDict(
            {
                "user": nn.Embedding(dataset.n_users, self.embedding_dim),
                "item": nn.Embedding(dataset.n_items, self.embedding_dim),
                "proj": nn.ModuleList([nn.Linear(x.shape[1], self.feat_embed_dim) for x in mats]),
            }
        )
        self.net.modal_weight = nn.Parameter(torch.zeros(len(mats)))
        for i, x in enumerate(mats):
            self.net.register_buffer(f"feat{i}", torch.as_tensor(x))
        nn.init.xavier_uniform_(self.net["user"].weight)
        nn.init.xavier_uniform_(self.net["item"].weight)
        self._graph = None

    def _on_epoch_start(self, epoch):
        self._graph = None  # rebuild the learned graph, with gradient, on the next batch

    def _item_graph(self) -> torch.Tensor:
        weights = torch.softmax(self.net.modal_weight, 0)
        graph = None
        for m, init in enumerate(self.init_graphs_):
            learned = learned_knn_graph(self.net["proj"][m](getattr(self.net, f"feat{m}")), self.k_)
            mixed = self.lambda_coeff * init + (1 - self.lambda_coeff) * learned
            graph = weights[m] * mixed if graph is None else graph + weights[m] * mixed
        return graph.coalesce()

    def _forward(self, graph):
        h = self.net["item"].weight
        for _ in range(self.n_layers):
            h = torch.sparse.mm(graph, h)
        ego = torch.cat([self.net["user"].weight, self.net["item"].weight])
        e = propagate(self.adj_, ego, self.n_ui_layers)
        return e[: self.n_users_], e[self.n_users_ :] + F.normalize(h, dim=1)

    def _batch_loss(self, users, pos, neg):
        if self._graph is None:
            graph = self._item_graph()
            self._graph = graph.detach()
        else:
            graph = self._graph
        eu, ei = self._forward(graph)
        return bpr_loss(eu[users], ei[pos], ei[neg]) + self.reg * l2(
            self.net["user"](users), self.net["item"](pos), self.net["item"](neg)
        )

    def _final_embeddings(self):
        return self._forward(self._item_graph())
