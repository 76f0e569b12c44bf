"""MGCN (Yu et al., MM 2023): multi-view graph convolutional network, as in the reference code
(MMRec's MGCN, itself the authors' code).

Per modality m (the FeatureSets in name order; the paper has image and text):
  item-item graph S_m = N(kNN_k(cos(f_m^0)))  the k largest cosine similarities per item as
      weights, the item itself included, N(S) = D^-1/2 S D^-1/2 (D the row sums); built once from
      the initial features and frozen
  behaviour-guided purifier  x_m = E_item * sigmoid(G_m (W_m f_m + b_m) + c_m)   (f_m trainable,
      as in the reference)
  item-item view  h_m,I = S_m^L x_m (L = n_layers), users h_m,U = R^ h_m,I, with R^ the user-item
      block of D^-1/2 A D^-1/2; h_m = [h_m,U; h_m,I]
User-item view: E = mean_{l=0..L_ui} A^l [E_user; E_item]  (LightGCN, A^ = D^-1/2 A D^-1/2).
Behaviour-aware fuser:
  a_m = w^T tanh(Q h_m + q),  beta = softmax_m(a)  (one query shared by the modalities)
  common c = sum_m beta_m h_m;  specific s_m = sigmoid(P_m E + p_m) * (h_m - c)
  side = (sum_m s_m + c) / (M + 1)          (M = 2 in the paper: (s_v + s_t + c) / 3)
Final e = E + side;  x_ui = <e_u, e_i>.
L = BPR(e_u, e_i, e_j) + reg_weight (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / (2 batch_size)
    + cl_loss [InfoNCE(side_I[i], E_I[i]) + InfoNCE(side_U[u], E_U[u])]
  InfoNCE(a, b) = mean_r -log(exp(cos(a_r, b_r)/tau) / sum_s exp(cos(a_r, b_s)/tau)) over the
  batch's rows (tau = temperature, 0.2 in the reference); the regulariser is on the final
  embeddings of the batch, divided by the configured batch size (as the reference).
Initialisation: Xavier-uniform ID embeddings, PyTorch's default for every linear layer. Learning
rate lr * 0.96^(epoch/50) (MMRec's MGCN.yaml). With one modality the fuser reduces to side = h/2
(c = h, s = 0); the reference requires exactly image + text.
Scores: a forward pass of the current weights (eval mode), as MMRec's full_sort_predict does
(no cached embeddings here, unlike MMRec's MMGCN/GRCN/DualGNN/SLMRec/DRAGON).
Cold item (no training interaction): its user-item view row (its untrained ID row / (L_ui+1)) is
  zeroed, in the score and as input of the preference gates; it is scored by the fused item-item
  views, built from its content neighbours' purified embeddings in S_m.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.content import MultimodalNet, modality_matrices
from vlmrec.models.graph import knn_normalised, to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.params import ContentKnnK, EmbeddingDim, TrainFeatures, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, half_squared_loss

ItemGraphLayers = Annotated[
    int, Field(ge=0, description="propagation layers on each item-item (content) graph")
]
ContrastiveTemperature = Annotated[float, Field(gt=0, description="InfoNCE temperature tau")]
FinalL2Reg = Annotated[
    float,
    Field(
        ge=0,
        description="L2 weight on the final batch embeddings: sum of squares / (2 x batch size), as the reference",
    ),
]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """mean_r -log softmax_s(cos(a_r, b_s) / tau)[r]: row r of `a` against every row of `b`, its
    own row the positive."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    return -torch.diagonal(torch.log_softmax(a @ b.T / temperature, dim=1)).mean()


def user_item_views(train: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(A^ = D^-1/2 A D^-1/2 on the (U+I) bipartite graph, R^ = its user-item block) as sparse
    tensors: the propagation matrix and the item-to-user aggregation of MGCN and SMORE."""
    adj = user_item_adjacency(train)
    n_users = train.shape[0]
    return to_torch_sparse(adj, device), to_torch_sparse(adj[:n_users, n_users:], device)


def item_item_view(graph: torch.Tensor, r_hat: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """[R^ S^L x; S^L x]: an item-item view for users and items."""
    for _ in range(n_layers):
        x = torch.sparse.mm(graph, x)
    return torch.cat([torch.sparse.mm(r_hat, x), x])


def zero_cold_rows(e: torch.Tensor, n_users: int, cold: torch.Tensor | None) -> torch.Tensor:
    """`e` ([users; items]) with the cold items' rows zeroed (a copy; `e` itself when no cold)."""
    if cold is None or not len(cold):
        return e
    e = e.clone()
    e[n_users + cold] = 0
    return e


class MGCNNet(MultimodalNet):
    """ID embeddings, raw features (trainable by default) and their projections, plus one purifier
    gate and one preference gate per modality and the shared attention query of the fuser."""

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, train_features: bool) -> None:
        super().__init__(n_users, mats, dim, dim, train_features)
        self.purify = nn.ModuleList([nn.Linear(dim, dim) for _ in mats])
        self.prefer = nn.ModuleList([nn.Linear(dim, dim) for _ in mats])
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))


@register("mgcn")
class MGCN(TorchRecommender):
    """MGCN: purified modality views on frozen item-item graphs, fused per user/item by behaviour."""

    net: MGCNNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        knn_k: ContentKnnK = 10,
        n_layers: ItemGraphLayers = 1,
        n_ui_layers: UserItemLayers = 2,
        cl_loss: Annotated[
            float, Field(ge=0, description="weight of the two InfoNCE losses (side view vs user-item view)")
        ] = 0.01,
        temperature: ContrastiveTemperature = 0.2,
        reg_weight: FinalL2Reg = 1e-4,
        train_features: TrainFeatures = True,
        training: TrainingParams = TrainingParams(lr_decay=0.96),  # MGCN.yaml: [0.96, 50]
    ) -> None:
        self.embedding_dim = embedding_dim
        self.knn_k = knn_k
        self.n_layers = n_layers
        self.n_ui_layers = n_ui_layers
        self.cl_loss = cl_loss
        self.temperature = temperature
        self.reg_weight = reg_weight
        self.train_features = train_features
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        k = min(self.knn_k, dataset.n_items)
        self.item_graphs_ = [to_torch_sparse(knn_normalised(x, k, weighted=True), self.device_) for x in mats]
        self.adj_, self.r_hat_ = user_item_views(dataset.matrix("train"), self.device_)
        self.net = MGCNNet(dataset.n_users, mats, self.embedding_dim, self.train_features)

    def _forward(self, cold: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final e, side view, user-item view E), each [users; items]; `cold` items get a zero
        user-item view."""
        net = self.net
        ui = propagate(self.adj_, torch.cat([net.user, net.item]), self.n_ui_layers)
        ui = zero_cold_rows(ui, self.n_users_, cold)
        views = [
            item_item_view(graph, self.r_hat_, net.item * torch.sigmoid(gate(proj(feats))), self.n_layers)
            for graph, feats, proj, gate in zip(self.item_graphs_, net.features, net.project, net.purify)
        ]
        beta = torch.softmax(torch.cat([net.query(h) for h in views], dim=1), dim=1)
        common = (beta.T.unsqueeze(-1) * torch.stack(views)).sum(0)
        side = common
        for h, prefer in zip(views, net.prefer):
            side = side + torch.sigmoid(prefer(ui)) * (h - common)
        side = side / (len(views) + 1)
        return ui + side, side, ui

    def _batch_loss(self, users, pos, neg):
        e, side, ui = self._forward()
        n = self.n_users_
        u, i, j = e[users], e[n + pos], e[n + neg]
        loss = bpr_loss(u, i, j) + self.reg_weight * half_squared_loss(
            u, i, j, batch_size=self.training.batch_size
        )
        cl = info_nce(side[n + pos], ui[n + pos], self.temperature) + info_nce(
            side[users], ui[users], self.temperature
        )
        return loss + self.cl_loss * cl

    def _final_embeddings(self):
        e = self._forward()[0]
        return e[: self.n_users_], e[self.n_users_ :]

    def _cold_final_embeddings(self):
        e = self._forward(torch.as_tensor(self.cold_items_, device=self.device_))[0]
        return e[: self.n_users_], e[self.n_users_ :]
