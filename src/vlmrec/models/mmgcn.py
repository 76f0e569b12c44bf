"""MMGCN (Wei et al., MM 2019): multi-modal graph convolution network, as in MMRec's MMGCN.

One user-item graph per modality m, sharing the ID embeddings E (users and items, (U+I) x d).
Node input x^0 = normalise_rows([P_m ; g_m(F_m)]): P_m the user preferences of modality m, F_m the
item features (frozen), g_m a linear layer to `latent_dim_image` for image-like sets (MMRec: 256)
and the identity for the others (MMRec feeds text raw). For each layer l = 1..n_layers:
  h     = leaky(A_mean x^(l-1) W_l)                      (A_mean = D^-1 A: the mean of the neighbours)
  x_hat = leaky(L_l x^(l-1) + c_l) + E                   (ID embedding added at every layer)
  x^l   = leaky(G_l [h | x_hat] + b_l)                   (`combine="concat"`; "add": leaky(G_l h + b_l + x_hat))
The representation is the mean over modalities of x^L; x_ui = <r_u, r_i>.
Loss: BPR(r_u, r_i, r_j) + reg_weight * (mean(E_u^2) + (mean(E_i^2) + mean(E_j^2)) / 2
  + sum over image-like m of mean(P_m^2))  (elementwise means over the batch rows, as the reference).
Initialisation: E, P_m, W_l, L_l, G_1 Xavier-normal, G_l (l > 1) and g_m PyTorch's default.

Reference behaviour kept, with options:
- MMRec creates E and P_m as plain tensors, not parameters: they stay at their random
  initialisation and only the layers train (`train_embeddings=False`, the default; True trains
  them, the paper's model). Then `reg_weight` is inert: the regulariser only touches those frozen
  tensors, so it adds a constant to the loss and changes no gradient (MMRec's reg_weight grid
  axis has no effect either; the zoo config does not search it).
- MMRec's `concate = 'False'` is a non-empty string, hence true: layers concatenate [h | x_hat]
  (`combine="concat"`); the paper's other variant is `combine="add"`.
- MMRec's yaml says n_layers: 2 but its GCN always runs three layers: `n_layers=3`.
Deliberate departure: MMRec scores with the representation cached by the last training batch
(one optimiser step old); vlmrec recomputes it from the current weights, since such a cache cannot
coexist with restoring the best validation state. Given the same weights the scores equal MMRec's
(docs/benchmarks.md, "The eight newer models").
Cold item (no training interaction, no edge): its ID row of E is zeroed at scoring, so it is
  scored by its content path alone (h = 0, x_hat = leaky(L x) from its projected features).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.features.featureset import FeatureSet
from vlmrec.models.content import modality_matrices
from vlmrec.models.graph import to_torch_sparse
from vlmrec.models.params import EmbeddingDim
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss

Combine = Literal["concat", "add"]


def bipartite(train: sp.csr_matrix) -> sp.csr_matrix:
    """The unnormalised (U+I) x (U+I) adjacency [[0, R], [R^T, 0]] of binary training edges."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    return sp.bmat([[None, r], [r.T, None]], format="csr").astype(np.float32)


def mean_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1 A on the bipartite graph (each node the mean of its neighbours; 0 without any)."""
    adj = bipartite(train)
    deg = np.asarray(adj.sum(1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return (sp.diags(inv) @ adj).tocsr().astype(np.float32)


def is_image(features: list[FeatureSet]) -> list[bool]:
    """Per feature set in name order (`modality_matrices`' order): is its modality image?"""
    return [str(f.manifest.get("modality", "")) == "image" for f in sorted(features, key=lambda f: f.name)]


def xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with a Xavier-normal weight and PyTorch's default bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_normal_(layer.weight)
    return layer


class ModalityGCN(nn.Module):
    """One modality's graph: user preferences, the optional feature projection and the layers."""

    feats: torch.Tensor  # the modality's item features (a buffer: frozen, as in the reference)

    def __init__(
        self,
        n_users: int,
        feats: np.ndarray,
        dim: int,
        latent: int,
        n_layers: int,
        combine: Combine,
        train: bool,
    ) -> None:
        super().__init__()
        self.register_buffer("feats", torch.tensor(feats))
        d_in = latent or feats.shape[1]
        self.mlp = nn.Linear(feats.shape[1], latent) if latent else None
        self.preference = nn.Parameter(
            nn.init.xavier_normal_(torch.empty(n_users, d_in)), requires_grad=train
        )
        sizes = [d_in] + [dim] * max(0, n_layers - 1)
        self.conv = nn.ParameterList([nn.Parameter(nn.init.xavier_normal_(torch.empty(s, s))) for s in sizes])
        self.linear = nn.ModuleList([xavier_linear(s, dim) for s in sizes])
        g_in = [s + dim if combine == "concat" else s for s in sizes]
        self.g = nn.ModuleList(
            [xavier_linear(n, dim) if i == 0 else nn.Linear(n, dim) for i, n in enumerate(g_in)]
        )
        self.combine = combine

    def forward(self, adj: torch.Tensor, id_embedding: torch.Tensor) -> torch.Tensor:
        """x^L for every user and item node."""
        items = self.mlp(self.feats) if self.mlp is not None else self.feats
        x = F.normalize(torch.cat([self.preference, items]), dim=1)
        for w, lin, g in zip(self.conv, self.linear, self.g):
            h = F.leaky_relu(torch.sparse.mm(adj, x @ w))
            x_hat = F.leaky_relu(lin(x)) + id_embedding
            if self.combine == "concat":
                x = F.leaky_relu(g(torch.cat([h, x_hat], 1)))
            else:
                x = F.leaky_relu(g(h) + x_hat)
        return x


class MMGCNNet(nn.Module):
    """The shared ID embeddings and one `ModalityGCN` per feature set."""

    def __init__(
        self,
        n_users: int,
        mats: list[np.ndarray],
        image: list[bool],
        dim: int,
        latent_image: int,
        latent_other: int,
        n_layers: int,
        combine: Combine,
        train: bool,
    ) -> None:
        super().__init__()
        n_nodes = n_users + mats[0].shape[0]
        self.id_embedding = nn.Parameter(
            nn.init.xavier_normal_(torch.empty(n_nodes, dim)), requires_grad=train
        )
        self.gcns = nn.ModuleList(
            [
                ModalityGCN(n_users, x, dim, latent_image if im else latent_other, n_layers, combine, train)
                for x, im in zip(mats, image)
            ]
        )


@register("mmgcn")
class MMGCN(TorchRecommender):
    net: MMGCNNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        n_layers: Annotated[
            int, Field(ge=1, description="graph convolution layers per modality (MMRec always runs 3)")
        ] = 3,
        latent_dim_image: Annotated[
            int,
            Field(ge=0, description="image-like sets are first projected to this size (MMRec 256; 0: raw)"),
        ] = 256,
        latent_dim_other: Annotated[
            int, Field(ge=0, description="other sets are first projected to this size (MMRec: 0, raw)")
        ] = 0,
        combine: Annotated[
            Combine,
            Field(description="layer output from [h | x_hat] (MMRec's effective choice) or h + x_hat"),
        ] = "concat",
        reg_weight: Annotated[
            float,
            Field(
                ge=0,
                description="weight of the mean squared ID rows of the batch and image preferences; inert "
                "when train_embeddings is false (the reference's default): every term it weighs is frozen",
            ),
        ] = 1e-4,
        train_embeddings: Annotated[
            bool,
            Field(
                description="train the ID embeddings and user preferences (MMRec leaves them at their init)"
            ),
        ] = False,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.latent_dim_image = latent_dim_image
        self.latent_dim_other = latent_dim_other
        self.combine = combine
        self.reg_weight = reg_weight
        self.train_embeddings = train_embeddings
        self.training = training

    def _setup(self, dataset, features, rng):
        fsets = self._require_features(features, dataset)
        self.image_ = is_image(fsets)
        self.adj_ = to_torch_sparse(mean_adjacency(dataset.matrix("train")), self.device_)
        self.net = MMGCNNet(
            dataset.n_users,
            modality_matrices(fsets),
            self.image_,
            self.embedding_dim,
            self.latent_dim_image,
            self.latent_dim_other,
            self.n_layers,
            self.combine,
            self.train_embeddings,
        )

    def _represent(self, id_embedding: torch.Tensor) -> torch.Tensor:
        """The mean over modalities of x^L, users then items."""
        return torch.stack([gcn(self.adj_, id_embedding) for gcn in self.net.gcns]).mean(0)

    def _batch_loss(self, users, pos, neg):
        r = self._represent(self.net.id_embedding)
        n_u = self.n_users_
        loss = bpr_loss(r[users], r[n_u + pos], r[n_u + neg])
        e = self.net.id_embedding
        reg = (e[users] ** 2).mean() + ((e[n_u + pos] ** 2).mean() + (e[n_u + neg] ** 2).mean()) / 2
        for gcn, im in zip(self.net.gcns, self.image_):
            if im:
                reg = reg + (gcn.preference**2).mean()
        return loss + self.reg_weight * reg

    def _final_embeddings(self):
        r = self._represent(self.net.id_embedding)
        return r[: self.n_users_], r[self.n_users_ :]

    def _cold_final_embeddings(self):
        e = self.net.id_embedding.clone()
        e[self.n_users_ + torch.as_tensor(self.cold_items_, device=e.device)] = 0
        r = self._represent(e)
        return r[: self.n_users_], r[self.n_users_ :]
