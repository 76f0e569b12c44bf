"""DRAGON (Zhou et al., ECAI 2023): dyadic relations enhanced by homogeneous graphs, as in the
reference code (MMRec's DRAGON, construction "cat", aggregation "add").

Per modality m (the FeatureSets in name order; the paper has image and text), f_m the raw
features (frozen: the reference's forward reads the raw feature tensor):
  x_m = normalize_rows([P_m; MLP2_m(leaky_relu(MLP1_m(f_m)))])   P_m: user preferences (U x d,
      Xavier-normal); MLP1: F_m -> 4d, MLP2: 4d -> d (PyTorch's default initialisation)
  heterogeneous (user-item) graph: x^_m = sum_{l=0..L_ui} A^l x_m, A^ = D^-1/2 A D^-1/2 on
      [[0, R], [R^T, 0]] without self-loops (R: training interactions)
  users u = [w_u,1 x^_1,u | ... | w_u,M x^_M,u] (w_u: trainable per-user modality weights,
      initialised as the softmax of Xavier-normal draws; one modality: no weight)
  items i = [x^_1,i | ... | x^_M,i]
Homogeneous graphs:
  item-item S = sum_m alpha_m N(kNN_k(cos(f_m)))  binary edges, the item itself included,
      N = D^-1/2 . D^-1/2, alpha = image_weight for image-modality sets (the rest shared), built
      once (FREEDOM's graph, `models/freedom.py`); h_I = S^{n_mm_layers} i
  user-user G: each user's `user_knn_k` users with the most co-interacted training items
      (c_uv = |N_u & N_v|, ties by the lower user index; training interactions only), weights
      softmax(c_uv) over them; h_U = G u
Final: e_u = u + h_U, e_i = i + h_I; x_ui = <e_u, e_i> (dimension M x d).
L = -mean log2 sigmoid(x_ui - x_uj) + reg_weight (sum_m mean(P_m[u]^2) + mean(W_user^2))
  (log base 2 and the regulariser on the batch's preference rows and on all modality weights, as
  the reference).
User graph padding (`user_padding`): the reference pads a user with fewer than k neighbours to k
  each epoch by repeatedly appending a random member of the growing list (softmax over the padded
  list, so a repeated neighbour weighs more; "resample", the default, drawn from the seeded
  generator); "none" is a deliberate departure: the softmax over the user's real neighbours only,
  fixed for the whole run. A user without co-interacting users gets h_U = 0 (as the reference).
  The padded lists are buffers of the network: restoring the best validation state restores the
  padding that state was validated with, so the final scores are the validated ones.
Defaults: MMRec's DRAGON.yaml (knn_k 10, n_mm_layers 1, image weight 0.1, d 64, user k 40) and the
authors' Amazon Baby point (README; in MMRec's grid): lr 1e-4, reg_weight 1e-3.
Deliberate departure: the reference scores with the embeddings cached by the last training batch
(one optimiser step old); vlmrec scores with a forward pass of the current weights, since such a
cache cannot coexist with restoring the best validation state (the scores of a restored best
state are that state's). Given the same weights the scores equal MMRec's (docs/benchmarks.md,
"The eight newer models").
Cold item (no training interaction): no rule needed: every item vector is built from its content
  (DRAGON has no item ID embedding); a cold item has no user-item edge, so it is its projected
  content x_m,i plus its content neighbours' view h_I.
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

from vlmrec.models.content import modality_matrices
from vlmrec.models.freedom import mixed_item_graph
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.params import ContentKnnK, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams

UserPadding = Literal["resample", "none"]


def co_occurrence_neighbours(
    train: sp.csr_matrix, k: int, block: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neighbours U x k int64, counts U x k float32, n U int64): each user's k users with the most
    shared training items (count desc, then index asc), the user itself excluded; row u holds
    n[u] <= k real entries, the rest 0. Built in blocks of users (sparse R_block R^T)."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    n_users = r.shape[0]
    nbr = np.zeros((n_users, k), dtype=np.int64)
    cnt = np.zeros((n_users, k), dtype=np.float32)
    n = np.zeros(n_users, dtype=np.int64)
    rt = r.T.tocsr()
    for start in range(0, n_users, block):
        c = (r[start : start + block] @ rt).tocoo()
        keep = (c.row + start != c.col) & (c.data > 0)
        rows, cols, vals = c.row[keep], c.col[keep], c.data[keep]
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        first = np.searchsorted(rows, rows, side="left")
        rank = np.arange(len(rows)) - first
        top = rank < k
        nbr[start + rows[top], rank[top]] = cols[top]
        cnt[start + rows[top], rank[top]] = vals[top]
        n[start : start + block] = np.minimum(np.bincount(rows, minlength=min(block, n_users - start)), k)
    return nbr, cnt, n


def padded_user_lists(
    nbr: np.ndarray, cnt: np.ndarray, n: np.ndarray, padding: UserPadding, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours U x k int64, weights U x k float32): row u = softmax of the counts over u's
    neighbour list, padded to k by random repeats (`resample`, the reference) or not (`none`);
    entries past the list weigh 0 (index 0). Empty rows weigh 0 everywhere."""
    k = nbr.shape[1]
    nbr, cnt, length = nbr.copy(), cnt.copy(), n.copy()
    if padding == "resample":
        if rng is None:
            raise ValueError("resample padding draws from a generator: pass rng")
        for _ in range(k):
            short = np.flatnonzero((length > 0) & (length < k))
            if not len(short):
                break
            pick = (rng.random(len(short)) * length[short]).astype(np.int64)
            nbr[short, length[short]] = nbr[short, pick]
            cnt[short, length[short]] = cnt[short, pick]
            length[short] += 1
    valid = np.arange(k)[None, :] < length[:, None]
    logits = np.where(valid, cnt.astype(np.float64), -np.inf)
    top = np.where(length > 0, logits.max(1), 0.0)
    w = np.where(valid, np.exp(logits - top[:, None]), 0.0)
    w /= np.maximum(w.sum(1, keepdims=True), 1e-300)
    return np.where(valid, nbr, 0), w.astype(np.float32)


def user_graph(
    nbr: np.ndarray, cnt: np.ndarray, n: np.ndarray, padding: UserPadding, rng: np.random.Generator | None
) -> sp.csr_matrix:
    """G (U x U) of `padded_user_lists`: duplicates add up; empty rows stay 0."""
    idx, w = padded_user_lists(nbr, cnt, n, padding, rng)
    n_users = len(idx)
    rows = np.repeat(np.arange(n_users), idx.shape[1])
    keep = w.ravel() > 0
    g = sp.csr_matrix((w.ravel()[keep], (rows[keep], idx.ravel()[keep])), (n_users,) * 2)
    g.sum_duplicates()
    return g


def sparse_user_graph(index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The sparse U x U user graph of (U x k) neighbour indices and weights (duplicates summed,
    zero weights dropped)."""
    n, k = index.shape
    rows = torch.arange(n, device=index.device).repeat_interleave(k)
    keep = weight.reshape(-1) > 0
    ind = torch.stack([rows[keep], index.reshape(-1)[keep]])
    return torch.sparse_coo_tensor(ind, weight.reshape(-1)[keep], (n, n), check_invariants=False).coalesce()


class DRAGONNet(nn.Module):
    """Per modality: frozen raw features, user preferences P_m and the two-layer MLP; the per-user
    modality weights; this epoch's (padded) user-user lists as buffers, so restoring the best
    validation state also restores the user graph it was scored with."""

    graph_index: torch.Tensor
    graph_weight: torch.Tensor

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, user_k: int) -> None:
        super().__init__()
        self.features = nn.ParameterList([nn.Parameter(torch.tensor(x), requires_grad=False) for x in mats])
        self.preference = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim))) for _ in mats]
        )
        self.mlp = nn.ModuleList([nn.Linear(x.shape[1], 4 * dim) for x in mats])
        self.mlp_out = nn.ModuleList([nn.Linear(4 * dim, dim) for _ in mats])
        w = nn.init.xavier_normal_(torch.empty(n_users, len(mats), 1))
        self.user_weight = nn.Parameter(torch.softmax(w, dim=1))
        self.register_buffer("graph_index", torch.zeros(n_users, user_k, dtype=torch.long))
        self.register_buffer("graph_weight", torch.zeros(n_users, user_k))


@register("dragon")
class DRAGON(TorchRecommender):
    """DRAGON: modality user-item graphs plus item-item and user-user homogeneous graphs."""

    net: DRAGONNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: Annotated[
            int, Field(ge=1, description="size of each modality's user and item representation")
        ] = 64,
        knn_k: ContentKnnK = 10,
        n_mm_layers: Annotated[int, Field(ge=0, description="propagation layers on the item-item graph")] = 1,
        n_ui_layers: UserItemLayers = 2,
        image_weight: Annotated[
            float, Field(ge=0, le=1, description="weight of image-like feature sets in the item-item graph")
        ] = 0.1,
        user_knn_k: Annotated[
            int, Field(ge=1, description="co-interacting users kept per user in the user-user graph")
        ] = 40,
        user_padding: Annotated[
            UserPadding,
            Field(
                description="pad short user lists to user_knn_k by random repeats each epoch (reference) or not"
            ),
        ] = "resample",
        reg_weight: Annotated[
            float,
            Field(ge=0, description="L2 weight (mean of squares) on user preferences and modality weights"),
        ] = 1e-3,
        training: TrainingParams = TrainingParams(lr=1e-4),  # the authors' Amazon Baby point
    ) -> None:
        self.embedding_dim = embedding_dim
        self.knn_k = knn_k
        self.n_mm_layers = n_mm_layers
        self.n_ui_layers = n_ui_layers
        self.image_weight = image_weight
        self.user_knn_k = user_knn_k
        self.user_padding = user_padding
        self.reg_weight = reg_weight
        self.training = training

    def _setup(self, dataset, features, rng):
        fsets = self._require_features(features, dataset)
        train = dataset.matrix("train")
        self._rng = rng
        k = min(self.knn_k, dataset.n_items)
        self.item_graph_ = to_torch_sparse(mixed_item_graph(fsets, k, self.image_weight), self.device_)
        self.adj_ = to_torch_sparse(user_item_adjacency(train), self.device_)
        k_user = min(self.user_knn_k, max(1, dataset.n_users - 1))
        self._neighbours = co_occurrence_neighbours(train, k_user)
        self.net = DRAGONNet(dataset.n_users, modality_matrices(fsets), self.embedding_dim, k_user)
        self._draw_user_graph()

    def _draw_user_graph(self) -> None:
        """This epoch's padded user lists into the net's buffers, and the sparse graph of them."""
        nbr, cnt, n = self._neighbours
        idx, w = padded_user_lists(nbr, cnt, n, self.user_padding, self._rng)
        self.net.graph_index.copy_(torch.as_tensor(idx))
        self.net.graph_weight.copy_(torch.as_tensor(w))
        self.user_graph_ = sparse_user_graph(self.net.graph_index, self.net.graph_weight)

    def _on_epoch_start(self, epoch):
        if epoch == 0:  # the net has moved to the device since _setup
            self.user_graph_ = sparse_user_graph(self.net.graph_index, self.net.graph_weight)
        elif self.user_padding == "resample":
            self._draw_user_graph()  # the reference resamples the padding each epoch

    def _forward(self, graph: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_U, e_I) on the user graph `graph` (default: the one drawn for this epoch)."""
        graph = self.user_graph_ if graph is None else graph
        net, n = self.net, self.n_users_
        reps = []
        for f, pref, mlp, out in zip(net.features, net.preference, net.mlp, net.mlp_out):
            x = F.normalize(torch.cat([pref, out(F.leaky_relu(mlp(f)))]), dim=1)
            total, e = x, x
            for _ in range(self.n_ui_layers):
                e = torch.sparse.mm(self.adj_, e)
                total = total + e
            reps.append(total)
        if len(reps) == 1:
            users = reps[0][:n]
        else:
            users = torch.cat([net.user_weight[:, m] * rep[:n] for m, rep in enumerate(reps)], dim=1)
        items = torch.cat([rep[n:] for rep in reps], dim=1)
        h = items
        for _ in range(self.n_mm_layers):
            h = torch.sparse.mm(self.item_graph_, h)
        return users + torch.sparse.mm(graph, users), items + h

    def _batch_loss(self, users, pos, neg):
        eu, ei = self._forward()
        u = eu[users]
        diff = (u * ei[pos]).sum(-1) - (u * ei[neg]).sum(-1)
        loss = -F.logsigmoid(diff).mean() / math.log(2.0)
        reg = (self.net.user_weight**2).mean()
        for pref in self.net.preference:
            reg = reg + (pref[users] ** 2).mean()
        return loss + self.reg_weight * reg

    def _final_embeddings(self):
        # the graph of the net's buffers: after a restored best state, that state's padding
        return self._forward(sparse_user_graph(self.net.graph_index, self.net.graph_weight))

    def _cold_final_embeddings(self):
        return self._final_embeddings()  # items are content only: a cold item is scored like any other
