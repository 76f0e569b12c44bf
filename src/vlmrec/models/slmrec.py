"""SLMRec (Tao et al., TMM 2022): self-supervised learning for multimedia recommendation, as in
MMRec's SLMRec (ssl_task FAC, concat fusion, adj_type pre).

Graphs: A = D^-1/2 A D^-1/2 on the training user-item graph; LG(U, X) = mean_{l=0..L} A^l [U ; X].
Per modality m: v_m = V_m N(f_m) + b_m (N: row L2 normalisation of the frozen raw features).
  (id_u, id_i) = LG(E_user, E_item),  (m_u, m_i) = LG(E_user, v_m)   (user embeddings shared)
  user r_u = W_u [id_u | m_1,u | ... | m_M,u] + c_u,  item r_i = W_i [id_i | m_1,i | ...] + c_i.
Main task (in-batch InfoNCE over the (u, i) training pairs; no negatives):
  L_main = CE(N(r_U) N(r_I)^T / temp, diagonal)
Fine-and-coarse (FAC) alignment on the batch items, InfoNCE without normalisation:
  s_1 = G_id id_i;     L_1 = CE(s_1 (H_1 m_1,i)^T / ssl_temp, diagonal)
  s_m = B_m A_m s_(m-1) (A_m: same size, B_m halves it); L_m = CE(s_m (H_m m_m,i)^T / ssl_temp, diag)
  (two modalities = MMRec's g_i_iv, g_v_iv, g_iv_iva, g_iva_ivat, g_t_ivat; modalities image
  first (manifest modality image), then by name (`content.image_first`), as MMRec's v before t:
  the second modality gets the half-size head whatever the sets are called)
L = L_main + ssl_alpha * sum_m L_m + weight_decay / 2 * sum ||theta||^2 over the trained
  parameters (MMRec's Adam weight_decay 1e-4 from SLMRec.yaml: the same gradient, so the same
  updates; it only shows in the loss value here).
Scores: <r_u, r_i> (MMRec returns sigmoid of it: the same ranking).
Initialisation: E_user, E_item and every linear weight Xavier-uniform, biases PyTorch's default.
Not implemented: MMRec's other ssl_task values (FD, FM, FD+FM) and mm_fusion_mode mean.
Deliberate departure: MMRec scores with the embeddings cached by the last training batch (one
optimiser step old); here they are recomputed from the current weights, since such a cache cannot
coexist with restoring the best validation state. Given the same weights the scores equal MMRec's
(docs/benchmarks.md, "The eight newer models").
Cold item (no training interaction, no edge): its ID part id_i (E_item_i / (L+1), untrained) is
  zeroed before the item fusion, so it is scored by its modality parts: r_i = W_i [0 | m_1,i | ...] + c_i.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.content import image_first_matrices, l2_rows
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.params import EmbeddingDim, GraphLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams


def uniform_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with a Xavier-uniform weight and PyTorch's default bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    return layer


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of a b^T / temperature with the diagonal as the targets."""
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class SLMRecNet(nn.Module):
    """ID embeddings, modality projections, the two fusion layers and the FAC heads."""

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int) -> None:
        super().__init__()
        n_items = mats[0].shape[0]
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim)))
        self.feats = nn.ParameterList(
            [nn.Parameter(torch.tensor(l2_rows(x)), requires_grad=False) for x in mats]
        )
        self.dense = nn.ModuleList([uniform_linear(x.shape[1], dim) for x in mats])
        self.fuse_user = uniform_linear(dim * (len(mats) + 1), dim)
        self.fuse_item = uniform_linear(dim * (len(mats) + 1), dim)
        self.head_id = uniform_linear(dim, dim)
        sizes = [dim]
        for _ in mats[1:]:
            sizes.append(max(1, sizes[-1] // 2))
        self.head = nn.ModuleList([uniform_linear(dim, s) for s in sizes])
        self.chain_a = nn.ModuleList([uniform_linear(s, s) for s in sizes[:-1]])
        self.chain_b = nn.ModuleList([uniform_linear(s, t) for s, t in zip(sizes[:-1], sizes[1:])])


@register("slmrec")
class SLMRec(TorchRecommender):
    net: SLMRecNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_layers: GraphLayers = 3,
        temp: Annotated[
            float, Field(gt=0, description="temperature of the main in-batch InfoNCE task")
        ] = 0.2,
        ssl_temp: Annotated[float, Field(gt=0, description="temperature of the FAC alignment tasks")] = 0.2,
        ssl_alpha: Annotated[float, Field(ge=0, description="weight of the FAC self-supervised loss")] = 0.1,
        weight_decay: Annotated[
            float, Field(ge=0, description="Adam's L2 weight decay on every trained parameter (MMRec: 1e-4)")
        ] = 1e-4,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.temp = temp
        self.ssl_temp = ssl_temp
        self.ssl_alpha = ssl_alpha
        self.weight_decay = weight_decay
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = image_first_matrices(self._require_features(features, dataset))
        self.adj_ = to_torch_sparse(user_item_adjacency(dataset.matrix("train")), self.device_)
        self.net = SLMRecNet(dataset.n_users, mats, self.embedding_dim)

    def _graph(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LG(E_user, items), split into users and items."""
        e = propagate(self.adj_, torch.cat([self.net.user, items]), self.n_layers)
        return e[: self.n_users_], e[self.n_users_ :]

    def _parts(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(id_u, id_i), (m_1,u, m_1,i), ...]."""
        net = self.net
        return [self._graph(net.item)] + [self._graph(d(f)) for d, f in zip(net.dense, net.feats)]

    def _fuse(self, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        users = self.net.fuse_user(torch.cat([u for u, _ in parts], 1))
        items = self.net.fuse_item(torch.cat([i for _, i in parts], 1))
        return users, items

    def _fac(self, parts: list[tuple[torch.Tensor, torch.Tensor]], pos: torch.Tensor) -> torch.Tensor:
        """The fine-and-coarse alignment losses of the batch items."""
        net = self.net
        s = net.head_id(parts[0][1][pos])
        loss = info_nce(s, net.head[0](parts[1][1][pos]), self.ssl_temp)
        for m in range(1, len(net.head)):
            s = net.chain_b[m - 1](net.chain_a[m - 1](s))
            loss = loss + info_nce(s, net.head[m](parts[m + 1][1][pos]), self.ssl_temp)
        return loss

    def _batch_loss(self, users, pos, neg):
        parts = self._parts()
        eu, ei = self._fuse(parts)
        loss = info_nce(F.normalize(eu[users], dim=1), F.normalize(ei[pos], dim=1), self.temp)
        loss = loss + self.ssl_alpha * self._fac(parts, pos)
        if self.weight_decay:
            trained = [p for p in self.net.parameters() if p.requires_grad]
            loss = loss + self.weight_decay / 2 * torch.stack([(p**2).sum() for p in trained]).sum()
        return loss

    def _final_embeddings(self):
        return self._fuse(self._parts())

    def _cold_final_embeddings(self):
        parts = self._parts()
        id_u, id_i = parts[0]
        id_i = id_i.clone()
        id_i[torch.as_tensor(self.cold_items_, device=id_i.device)] = 0
        return self._fuse([(id_u, id_i), *parts[1:]])
