"""LGMRec (Guo et al., AAAI 2024): local and global graph learning for multimodal recommendation,
as in the reference code (MMRec's LGMRec with cf_model=lightgcn, itself the authors' code).

A^ = D^-1/2 A D^-1/2 on the user-item graph A = [[0, R], [R^T, 0]] (LightGCN's), R the training
interactions. Per modality m (the FeatureSets image first, by the manifest's modality, then by
name: `content.image_first`; the paper has image and text, and the first set is the anchor of
the contrastive loss, the reference's image), f_m the raw features (frozen, as in the reference):
  CGE (collaborative graph embedding)  E_c = mean_{l=0..L_ui} A^l [E_user; E_item]
  MGE (modality graph embedding)       z_m = f_m W_m;  E_m = A^{L_mm} [D_u^-1 R z_m; z_m]
      (a user starts as the mean of its items' projected features)
  local embedding  E_l = E_c + sum_m normalize(E_m)
  GHE (global hypergraph embedding), with `hyper_num` hyperedges per modality:
      H_I,m = Gumbel-softmax_tau(f_m V_m),  H_U,m = Gumbel-softmax_tau(R f_m V_m)   (over the
      hyperedges, tau = temperature; y = softmax((x + g) / tau), g ~ Gumbel(0, 1)), each then
      dropped out with keep probability keep_rate (training only)
      per layer (n_hyper_layers): Lambda = H_I,m^T G_I;  G_I = H_I,m Lambda;  G_U = H_U,m Lambda,
      starting from G_I = E_c,I;  E_g,m = [G_U; G_I]
  final  e = E_l + alpha * normalize(sum_m E_g,m);  x_ui = <e_u, e_i>   (normalize: rows, L2)
L = BPR(e_u, e_i, e_j) + cl_weight * HCL + reg_weight * (||e_u|| + ||e_i|| + ||e_j||) / B
  (EmbLoss form on the final batch embeddings), with the hypergraph contrastive loss between
  modalities (m, m') (the pair image/text in the paper):
  HCL = ssl(G_U,m[u], G_U,m'[u], G_U,m') + ssl(G_I,m[i], G_I,m'[i], G_I,m')
  ssl(a, b, all) = -sum_r log(exp(cos(a_r, b_r)/tau) / sum_s exp(cos(a_r, all_s)/tau))  (a sum over
  the batch, not a mean, as the reference). With one modality there is no HCL; with more than
  two, HCL sums over every pair (the reference takes exactly image + text and with one modality
  drops all content, scoring by E_c alone).
Initialisation: Xavier-uniform ID embeddings, W_m and V_m. Gumbel noise is also drawn when scoring,
as the reference does (`score_gumbel=false`: the noise-free softmax at scoring, a deliberate
departure that makes the scores a function of the weights alone; recorded in the parameters).
Scores: a forward pass of the current weights (eval mode), as MMRec's full_sort_predict does
(no cached embeddings here, unlike MMRec's MMGCN/GRCN/DualGNN/SLMRec/DRAGON).
Cold item (no training interaction): its CGE row (its untrained ID row / (L_ui+1)) is zeroed in
  the final sum; it is scored by its modality embeddings (zero once L_mm >= 1: no edges) plus
  alpha x its global embedding normalize(sum_m H_I,m[i] Lambda_m), from its content's hyperedge
  memberships.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.content import image_first_matrices
from vlmrec.models.graph import to_torch_sparse, user_item_adjacency
from vlmrec.models.lightgcn import propagate
from vlmrec.models.mgcn import zero_cold_rows
from vlmrec.models.params import EmbeddingDim, EmbLossReg, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, emb_loss


def gumbel_noise(logits: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise -log(Exp(1)) of `logits`' shape (torch's gumbel_softmax draws it so)."""
    return -torch.empty_like(logits).exponential_().log()


def hypergraph_embeddings(
    h_items: torch.Tensor, h_users: torch.Tensor, e_items: torch.Tensor, n_layers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_U, G_I) after `n_layers` rounds of item -> hyperedge -> item/user message passing."""
    g_items, g_users = e_items, e_items[:0]
    for _ in range(n_layers):
        lat = h_items.T @ g_items
        g_items = h_items @ lat
        g_users = h_users @ lat
    return g_users, g_items


def hypergraph_contrast(
    a: torch.Tensor, everyone: torch.Tensor, idx: torch.Tensor, tau: float
) -> torch.Tensor:
    """sum_r -log softmax_s(cos(a_r, everyone_s) / tau)[idx_r]: the reference's ssl_triple_loss."""
    logits = F.normalize(a, dim=1) @ F.normalize(everyone, dim=1).T / tau
    return -torch.log_softmax(logits, dim=1).gather(1, idx[:, None]).sum()


class LGMRecNet(nn.Module):
    """ID embeddings; per modality the frozen raw features, the projection W_m and the hyperedge
    map V_m (Xavier-uniform, no bias, as the reference)."""

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, hyper_num: int) -> None:
        super().__init__()
        n_items = mats[0].shape[0]
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim)))
        self.features = nn.ParameterList([nn.Parameter(torch.tensor(x), requires_grad=False) for x in mats])
        self.project = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_uniform_(torch.empty(x.shape[1], dim))) for x in mats]
        )
        self.hyper = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_uniform_(torch.empty(x.shape[1], hyper_num))) for x in mats]
        )


@register("lgmrec")
class LGMRec(TorchRecommender):
    """LGMRec: LightGCN + modality graph embeddings (local) + modality hypergraphs (global)."""

    net: LGMRecNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_ui_layers: UserItemLayers = 2,
        n_mm_layers: Annotated[
            int, Field(ge=0, description="propagation layers of the modality features on the user-item graph")
        ] = 2,
        n_hyper_layers: Annotated[int, Field(ge=1, description="hypergraph message-passing rounds")] = 1,
        hyper_num: Annotated[int, Field(ge=1, description="hyperedges per modality")] = 4,
        keep_rate: Annotated[
            float, Field(gt=0, le=1, description="keep probability of the hyperedge assignments (training)")
        ] = 0.5,
        alpha: Annotated[float, Field(ge=0, description="weight of the global (hypergraph) embedding")] = 0.3,
        cl_weight: Annotated[
            float, Field(ge=0, description="weight of the hypergraph contrastive loss")
        ] = 1e-4,
        reg_weight: EmbLossReg = 1e-6,
        temperature: Annotated[
            float, Field(gt=0, description="Gumbel-softmax and contrastive temperature tau")
        ] = 0.2,
        score_gumbel: Annotated[
            bool,
            Field(
                description="Gumbel noise in the hyperedge assignments at scoring too (reference; false: none)"
            ),
        ] = True,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_ui_layers = n_ui_layers
        self.n_mm_layers = n_mm_layers
        self.n_hyper_layers = n_hyper_layers
        self.hyper_num = hyper_num
        self.keep_rate = keep_rate
        self.alpha = alpha
        self.cl_weight = cl_weight
        self.reg_weight = reg_weight
        self.temperature = temperature
        self.score_gumbel = score_gumbel
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = image_first_matrices(self._require_features(features, dataset))
        train = sp.csr_matrix(dataset.matrix("train"), dtype=np.float32)
        deg = np.asarray(train.sum(1)).ravel()
        inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
        self.adj_ = to_torch_sparse(user_item_adjacency(train), self.device_)
        self.r_ = to_torch_sparse(train, self.device_)
        self.user_mean_ = to_torch_sparse(sp.diags(inv) @ train, self.device_)
        self.net = LGMRecNet(dataset.n_users, mats, self.embedding_dim, self.hyper_num)

    def _assignments(self, logits: torch.Tensor) -> torch.Tensor:
        """Gumbel-softmax over the hyperedges (noise-free at scoring with score_gumbel=false),
        then dropout with keep probability keep_rate while training."""
        if self.net.training or self.score_gumbel:
            logits = logits + gumbel_noise(logits)
        h = torch.softmax(logits / self.temperature, dim=1)
        return F.dropout(h, 1.0 - self.keep_rate, training=self.net.training)

    def _forward(
        self, cold: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """(final e = [users; items], [(G_U,m, G_I,m) per modality]); `cold` items' CGE rows are
        zeroed in the final sum."""
        net, n = self.net, self.n_users_
        cge = propagate(self.adj_, torch.cat([net.user, net.item]), self.n_ui_layers)
        local = zero_cold_rows(cge, n, cold)
        hyper: list[tuple[torch.Tensor, torch.Tensor]] = []
        for f, w, v in zip(net.features, net.project, net.hyper):
            z = f @ w
            e_m = torch.cat([torch.sparse.mm(self.user_mean_, z), z])
            for _ in range(self.n_mm_layers):
                e_m = torch.sparse.mm(self.adj_, e_m)
            local = local + F.normalize(e_m, dim=1)
            logits = f @ v
            h_items = self._assignments(logits)
            h_users = self._assignments(torch.sparse.mm(self.r_, logits))
            hyper.append(hypergraph_embeddings(h_items, h_users, cge[n:], self.n_hyper_layers))
        ghe = torch.stack([torch.cat(pair) for pair in hyper]).sum(0)
        return local + self.alpha * F.normalize(ghe, dim=1), hyper

    def _batch_loss(self, users, pos, neg):
        e, hyper = self._forward()
        n = self.n_users_
        u, i, j = e[users], e[n + pos], e[n + neg]
        loss = bpr_loss(u, i, j) + self.reg_weight * emb_loss(u, i, j)
        tau = self.temperature
        for a in range(len(hyper)):
            for b in range(a + 1, len(hyper)):
                (ua, ia), (ub, ib) = hyper[a], hyper[b]
                hcl = hypergraph_contrast(ua[users], ub, users, tau) + hypergraph_contrast(
                    ia[pos], ib, pos, tau
                )
                loss = loss + self.cl_weight * hcl
        return loss

    def _final_embeddings(self):
        e = self._forward()[0]
        return e[: self.n_users_], e[self.n_users_ :]

    def _cold_final_embeddings(self):
        e = self._forward(torch.as_tensor(self.cold_items_, device=self.device_))[0]
        return e[: self.n_users_], e[self.n_users_ :]
