"""DualGNN (Wang et al., TMM 2021): dual graph neural network, as in MMRec's DualGNN.

Single-modal representation learning, per modality m (frozen raw features f_m):
  z_m = W2 leaky(W1 f_m + b1) + b2 (4d hidden units, d = `embedding_dim`),
  x = N([P_m ; z_m]) (N: row L2 normalisation, P_m the users' modality preferences),
  r_m = x + A x + A^2 x   (`n_layers` = 2 terms; A = D^-1/2 A D^-1/2 on the training user-item graph).
Items: r_i = sum_m r_m,i. Users, fused with per-user weights w_u (U x M; initialised as a softmax):
  MMRec's forward sums the modalities in place into the first modality's tensor, so it fuses
  w_u0 * sum_m r_m,u + sum_{m>0} w_um r_m,u (`user_fusion="reference"`, default); the paper's
  weighted sum sum_m w_um r_m,u is `user_fusion="weighted_sum"`; one modality: r_0,u.
User co-occurrence graph (training interactions only): c_uv = |items(u) & items(v)| (u != v);
  each user keeps its top `user_k` co-occurring users (ties: lower user index), with weights
  softmax over their counts (`user_aggr="mean"`: 1/k). Users with fewer than k (but some)
  neighbours are padded, each epoch, by drawing uniformly from their list as it grows (MMRec's
  resampling; `user_graph_padding="none"`: only the true neighbours, softmax over them).
  h_u = sum_v g_uv r_v; final user r_u + h_u; x_ui = <r_u + h_u, r_i>.
Loss: -mean log2 sigmoid(x_ui - x_uj) (MMRec's base-2 logarithm) + reg_weight * (sum_m
  mean(P_m,u^2) + mean(w^2)) over the batch users.
Initialisation: P_m Xavier-normal, w softmax(Xavier-normal), linear layers PyTorch's default.
Modalities image first (FeatureSets whose manifest says modality image), then by name
(`content.image_first`), as MMRec's v before t: the first modality's weight carries the sum in
the reference fusion, so the roles follow the content, not the set names.
Noticed and not copied: MMRec builds per-modality "dropped" edge sets its forward never uses; its
item weights weight_i are never used in a score (only their L2 term enters its loss, so they are
left out here).
Deliberate departure: MMRec scores with the representation cached by the last training batch
(one optimiser step old); here it is recomputed from the current weights, since such a cache
cannot coexist with restoring the best validation state. Given the same weights the scores equal
MMRec's (docs/benchmarks.md, "The eight newer models").
Cold item (no training interaction): scored like any item, by its content path alone (DualGNN
  has no item ID embedding): r_i = sum_m N(z_m,i) (no neighbours to add).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.content import image_first_matrices
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.params import EmbeddingDim
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss

UserFusion = Literal["reference", "weighted_sum"]
UserAggr = Literal["softmax", "mean"]
Padding = Literal["resample", "none"]


def user_cooccurrence_topk(
    train: sp.csr_matrix, k: int, budget: int = 20_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neighbours, counts, n): each user's top-k users by co-interacted items (itself excluded,
    ties by lower index), as (U, k) int64 / float32 arrays filled from the left, and n (U,) the
    number of real neighbours. Built in user blocks of about `budget` candidate pairs."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    n_users = r.shape[0]
    cost = np.asarray(r @ np.asarray(r.sum(0)).ravel()).ravel()
    nbr = np.zeros((n_users, k), np.int64)
    cnt = np.zeros((n_users, k), np.float32)
    n = np.zeros(n_users, np.int64)
    rt = r.T.tocsr()
    start = 0
    while start < n_users:
        stop = start + max(1, int(np.searchsorted(np.cumsum(cost[start:]), budget, side="right")))
        block = (r[start:stop] @ rt).tocoo()
        rows, cols, vals = block.row, block.col, block.data
        keep = rows + start != cols
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        first = np.searchsorted(rows, np.arange(stop - start))
        rank = np.arange(len(rows)) - first[rows]
        top = rank < k
        nbr[rows[top] + start, rank[top]] = cols[top]
        cnt[rows[top] + start, rank[top]] = vals[top]
        n[start:stop] = np.minimum(np.bincount(rows, minlength=stop - start), k)
        start = stop
    return nbr, cnt, n


def pad_by_resampling(
    nbr: np.ndarray, cnt: np.ndarray, n: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fill each row with 0 < n < k neighbours up to k, each new entry a uniform draw from the
    row's list so far (MMRec's topk_sample); vectorised over users."""
    nbr, cnt, size = nbr.copy(), cnt.copy(), n.copy()
    k = nbr.shape[1]
    while True:
        rows = np.flatnonzero((size > 0) & (size < k))
        if not len(rows):
            return nbr, cnt
        pick = rng.integers(0, size[rows])
        nbr[rows, size[rows]] = nbr[rows, pick]
        cnt[rows, size[rows]] = cnt[rows, pick]
        size[rows] += 1


def neighbour_weights(cnt: np.ndarray, valid: np.ndarray, aggr: UserAggr) -> np.ndarray:
    """Row weights over the valid entries: softmax of the counts, or their mean; 0 elsewhere."""
    if aggr == "mean":
        per_row = valid.sum(1, keepdims=True)
        return np.divide(valid, per_row, out=np.zeros(valid.shape), where=per_row > 0).astype(np.float32)
    z = np.where(valid, cnt, -np.inf)
    top = np.max(np.where(valid, cnt, 0.0), axis=1, keepdims=True)
    ex = np.where(valid, np.exp(z - top), 0.0)
    total = ex.sum(1, keepdims=True)
    return np.divide(ex, total, out=np.zeros_like(ex), where=total > 0).astype(np.float32)


class DualGNNNet(nn.Module):
    """Per-modality preferences and content MLPs, the user fusion weights, and this epoch's user
    graph as buffers (so the best state restores the graph it was scored with)."""

    graph_index: torch.Tensor
    graph_weight: torch.Tensor

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, k: int) -> None:
        super().__init__()
        self.feats = nn.ParameterList([nn.Parameter(torch.tensor(x), requires_grad=False) for x in mats])
        self.preference = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim))) for _ in mats]
        )
        self.mlp = nn.ModuleList([nn.Linear(x.shape[1], 4 * dim) for x in mats])
        self.mlp_out = nn.ModuleList([nn.Linear(4 * dim, dim) for _ in mats])
        w = torch.softmax(nn.init.xavier_normal_(torch.empty(n_users, len(mats), 1)), dim=1)
        self.weight_u = nn.Parameter(w.squeeze(-1))
        self.register_buffer("graph_index", torch.zeros(n_users, k, dtype=torch.long))
        self.register_buffer("graph_weight", torch.zeros(n_users, k))


@register("dualgnn")
class DualGNN(TorchRecommender):
    net: DualGNNNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_layers: Annotated[
            int, Field(ge=0, description="propagation steps on the user-item graph per modality")
        ] = 2,
        user_k: Annotated[
            int, Field(ge=1, description="neighbours per user in the co-occurrence graph")
        ] = 40,
        user_aggr: Annotated[
            UserAggr,
            Field(description="user-graph weights: softmax of the co-occurrence counts, or the mean"),
        ] = "softmax",
        user_graph_padding: Annotated[
            Padding,
            Field(
                description="users with fewer than user_k neighbours: resample to k each epoch (MMRec) or not"
            ),
        ] = "resample",
        user_fusion: Annotated[
            UserFusion,
            Field(
                description="user modality fusion: MMRec's (first modality carries the sum of all) or the "
                "paper's weighted sum"
            ),
        ] = "reference",
        reg_weight: Annotated[
            float, Field(ge=0, description="weight of the mean squared batch preferences and fusion weights")
        ] = 1e-4,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.user_k = user_k
        self.user_aggr = user_aggr
        self.user_graph_padding = user_graph_padding
        self.user_fusion = user_fusion
        self.reg_weight = reg_weight
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = image_first_matrices(self._require_features(features, dataset))
        train = dataset.matrix("train")
        self._rng = rng
        self.adj_ = to_torch_sparse(user_item_adjacency(train), self.device_)
        k = min(self.user_k, max(1, dataset.n_users - 1))
        self._nbr, self._cnt, self._n = user_cooccurrence_topk(train, k)
        self.net = DualGNNNet(dataset.n_users, mats, self.embedding_dim, k)

    def _on_epoch_start(self, epoch):
        nbr, cnt = self._nbr, self._cnt
        if self.user_graph_padding == "resample":
            nbr, cnt = pad_by_resampling(nbr, cnt, self._n, self._rng)
            valid = np.repeat((self._n > 0)[:, None], nbr.shape[1], 1)
        else:
            valid = np.arange(nbr.shape[1])[None, :] < self._n[:, None]
        w = neighbour_weights(cnt, valid, self.user_aggr)
        device = self.net.graph_index.device
        self.net.graph_index.copy_(torch.as_tensor(nbr, device=device))
        self.net.graph_weight.copy_(torch.as_tensor(w, device=device))
        self._graph = self._user_graph()

    def _user_graph(self) -> torch.Tensor:
        """The sparse U x U user graph of the net's buffers (duplicate neighbours summed)."""
        idx, w = self.net.graph_index, self.net.graph_weight
        rows = torch.arange(len(idx), device=idx.device).repeat_interleave(idx.shape[1])
        keep = w.reshape(-1) > 0
        ind = torch.stack([rows[keep], idx.reshape(-1)[keep]])
        n = len(idx)
        return torch.sparse_coo_tensor(ind, w.reshape(-1)[keep], (n, n), check_invariants=False).coalesce()

    def _modality(self, m: int) -> torch.Tensor:
        """r_m = x + A x + ... + A^L x for every node of modality m."""
        net = self.net
        z = net.mlp_out[m](F.leaky_relu(net.mlp[m](net.feats[m])))
        x = F.normalize(torch.cat([net.preference[m], z]), dim=1)
        out, h = x, x
        for _ in range(self.n_layers):
            h = torch.sparse.mm(self.adj_, h)
            out = out + h
        return out

    def _forward(self, graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reps = [self._modality(m) for m in range(len(self.net.feats))]
        n_u = self.n_users_
        items = torch.stack(reps).sum(0)[n_u:]
        users = [r[:n_u] for r in reps]
        w = self.net.weight_u
        weighted = [w[:, m : m + 1] * users[m] for m in range(len(users))]
        if len(users) == 1:
            user = users[0]
        elif self.user_fusion == "reference":
            user = w[:, :1] * torch.stack(users).sum(0) + torch.stack(weighted[1:]).sum(0)
        else:
            user = torch.stack(weighted).sum(0)
        return user + torch.sparse.mm(graph, user), items

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._forward(self._graph)
        loss = bpr_loss(eu[users], ei[pos], ei[neg]) / math.log(2)
        reg = sum((p[users] ** 2).mean() for p in self.net.preference) + (self.net.weight_u**2).mean()
        return loss + self.reg_weight * reg

    def _final_embeddings(self):
        return self._forward(self._user_graph())

    def _cold_final_embeddings(self):
        # no item ID embedding: a cold item's representation is already its content path
        return self._final_embeddings()
