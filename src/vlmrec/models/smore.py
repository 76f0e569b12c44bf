"""SMORE (Ong & Khong, WSDM 2025): spectrum-based modality representation fusion, as in the
reference code (MMRec's SMORE, itself the authors' code).

Per modality m (the FeatureSets in name order; the paper has image and text):
  item-item graph S_m = N(kNN_k_m(cos(f_m^0)))  weighted by the cosine, the item itself included,
      N(S) = D^-1/2 S D^-1/2 (D the row sums), frozen; k_m = image_knn_k for image-modality sets,
      text_knn_k for the others
  fusion graph S_f = the element-wise max of the S_m over the union of their edges
  projected features z_m = W_m f_m + b_m  (f_m trainable, as in the reference)
Spectral filtering along the embedding dimension (rfft/irfft with norm="ortho", d = embedding_dim):
  denoised  z~_m = irfft(rfft(z_m) * w_m)
  fused     z~_f = irfft(prod_m rfft(z_m) * w_f)      (w: learnable complex filters, d/2+1 bins)
Purified item embeddings x_v = E_item * sigmoid(G_v z~_v + c_v) for v in {m..., f}; item-item views
  h_v,I = S_v^L x_v (L = n_layers), users h_v,U = R^ h_v,I (R^ the user-item block of
  D^-1/2 A D^-1/2); h_v = [h_v,U; h_v,I].
User-item view E = mean_{l=0..L_ui} A^l [E_user; E_item] (LightGCN, A^ = D^-1/2 A D^-1/2).
Modality-aware preference:
  a_m = softmax_d(Q2_m tanh(Q1_m h_f + q_m)) * h_m   (softmax over the d dimensions of each row)
  g_v = dropout(sigmoid(P_v E + p_v));  side = mean(g_m * a_m for each m, g_f * h_f)
Final e = E + side;  x_ui = <e_u, e_i>.
L = BPR(e_u, e_i, e_j) + reg_weight (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / (2 batch_size)
    + cl_loss [InfoNCE(side_I[i], E_I[i]) + InfoNCE(side_U[u], E_U[u])]   (tau = temperature)
as in MGCN (see `models/mgcn.py`). Initialisation: Xavier-uniform ID embeddings, N(0, 1) real and
imaginary filter parts, PyTorch's default for every linear layer. Learning rate
lr * 0.96^(epoch/50) (MMRec's SMORE.yaml). Defaults: the authors' best point for Amazon Baby
(their README; every value is in MMRec's grid): n_ui_layers 4, image_knn_k 40, text_knn_k 15,
reg_weight 1e-4, dropout 0.1, cl_loss 0.01.
Scores: a forward pass of the current weights (eval mode), as MMRec's full_sort_predict does
(no cached embeddings here, unlike MMRec's MMGCN/GRCN/DualGNN/SLMRec/DRAGON).
Cold item (no training interaction): its user-item view row (its untrained ID row / (L_ui+1)) is
  zeroed, in the score and as input of the preference gates; it is scored by its fused spectral
  views, built from its content neighbours' purified embeddings in S_m and S_f.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.features.featureset import FeatureSet
from vlmrec.models.content import MultimodalNet
from vlmrec.models.graph import knn_normalised, to_torch_sparse
from vlmrec.models.lightgcn import propagate
from vlmrec.models.mgcn import (
    ContrastiveTemperature,
    FinalL2Reg,
    ItemGraphLayers,
    info_nce,
    item_item_view,
    user_item_views,
    zero_cold_rows,
)
from vlmrec.models.params import EmbeddingDim, TrainFeatures, UserItemLayers
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, half_squared_loss


def max_fused_graph(graphs: list[sp.csr_matrix]) -> sp.csr_matrix:
    """The element-wise max of sparse graphs over the union of their edges (an edge in one graph
    only keeps its value, negative or not)."""
    coo = [g.tocoo() for g in graphs]
    n = graphs[0].shape[0]
    key = np.concatenate([c.row.astype(np.int64) * n + c.col for c in coo])
    vals = np.concatenate([c.data for c in coo]).astype(np.float32)
    order = np.lexsort((-vals, key))  # by edge, largest value first
    key, vals = key[order], vals[order]
    first = np.r_[True, key[1:] != key[:-1]]
    return sp.csr_matrix((vals[first], (key[first] // n, key[first] % n)), shape=(n, n))


def _query(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim, bias=False))


class SMORENet(MultimodalNet):
    """ID embeddings, raw features (trainable by default) and their projections, plus per view
    (each modality, then the fusion) a complex spectral filter, a purifier gate and a preference
    gate, and per modality the attention query on the fusion view."""

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, train_features: bool) -> None:
        super().__init__(n_users, mats, dim, dim, train_features)
        n_views = len(mats) + 1
        # real and imaginary parts side by side (torch.view_as_complex), as the reference keeps them
        self.filters = nn.ParameterList([nn.Parameter(torch.randn(dim // 2 + 1, 2)) for _ in range(n_views)])
        self.purify = nn.ModuleList([nn.Linear(dim, dim) for _ in range(n_views)])
        self.prefer = nn.ModuleList([nn.Linear(dim, dim) for _ in range(n_views)])
        self.query = nn.ModuleList([_query(dim) for _ in mats])


@register("smore")
class SMORE(TorchRecommender):
    """SMORE: spectrally denoised and fused modality views on frozen item-item graphs."""

    net: SMORENet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        image_knn_k: Annotated[
            int, Field(ge=1, description="neighbours per item in an image-modality kNN graph (self included)")
        ] = 40,
        text_knn_k: Annotated[
            int,
            Field(
                ge=1, description="neighbours per item in the other modalities' kNN graphs (self included)"
            ),
        ] = 15,
        n_layers: ItemGraphLayers = 1,
        n_ui_layers: UserItemLayers = 4,
        cl_loss: Annotated[
            float, Field(ge=0, description="weight of the two InfoNCE losses (side view vs user-item view)")
        ] = 0.01,
        temperature: ContrastiveTemperature = 0.2,
        reg_weight: FinalL2Reg = 1e-4,
        dropout: Annotated[
            float, Field(ge=0, lt=1, description="dropout on the preference gates during training")
        ] = 0.1,
        train_features: TrainFeatures = True,
        training: TrainingParams = TrainingParams(lr_decay=0.96),  # SMORE.yaml: [0.96, 50]
    ) -> None:
        self.embedding_dim = embedding_dim
        self.image_knn_k = image_knn_k
        self.text_knn_k = text_knn_k
        self.n_layers = n_layers
        self.n_ui_layers = n_ui_layers
        self.cl_loss = cl_loss
        self.temperature = temperature
        self.reg_weight = reg_weight
        self.dropout = dropout
        self.train_features = train_features
        self.training = training

    def _setup(self, dataset, features, rng):
        fsets = sorted(self._require_features(features, dataset), key=lambda f: f.name)
        mats = [np.asarray(fs.vectors, dtype=np.float32) for fs in fsets]
        graphs = [
            knn_normalised(x, self._k(fs, dataset.n_items), weighted=True) for fs, x in zip(fsets, mats)
        ]
        graphs.append(max_fused_graph(graphs))
        self.item_graphs_ = [to_torch_sparse(g, self.device_) for g in graphs]
        self.adj_, self.r_hat_ = user_item_views(dataset.matrix("train"), self.device_)
        self.net = SMORENet(dataset.n_users, mats, self.embedding_dim, self.train_features)

    def _k(self, fs: FeatureSet, n_items: int) -> int:
        image = str(fs.manifest.get("modality", "")) == "image"
        return min(self.image_knn_k if image else self.text_knn_k, n_items)

    def _spectral(self) -> list[torch.Tensor]:
        """[z~_m for each modality, z~_f]: the filtered projections."""
        net, d = self.net, self.embedding_dim
        spectra = [torch.fft.rfft(proj(f), dim=1, norm="ortho") for f, proj in zip(net.features, net.project)]
        fused = spectra[0]
        for s in spectra[1:]:
            fused = fused * s
        return [
            torch.fft.irfft(s * torch.view_as_complex(w), n=d, dim=1, norm="ortho")
            for s, w in zip([*spectra, fused], net.filters)
        ]

    def _forward(self, cold: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final e, side view, user-item view E), each [users; items]; `cold` items get a zero
        user-item view."""
        net = self.net
        ui = propagate(self.adj_, torch.cat([net.user, net.item]), self.n_ui_layers)
        ui = zero_cold_rows(ui, self.n_users_, cold)
        views = [
            item_item_view(graph, self.r_hat_, net.item * torch.sigmoid(gate(z)), self.n_layers)
            for graph, z, gate in zip(self.item_graphs_, self._spectral(), net.purify)
        ]
        fusion = views[-1]
        parts = [torch.softmax(q(fusion), dim=1) * h for q, h in zip(net.query, views[:-1])] + [fusion]
        gates = [F.dropout(torch.sigmoid(p(ui)), self.dropout, training=net.training) for p in net.prefer]
        side = torch.stack([g * h for g, h in zip(gates, parts)]).mean(0)
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
