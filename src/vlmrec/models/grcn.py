"""GRCN (Wei et al., MM 2020): graph-refined convolutional network, as in MMRec's GRCN.

Per modality m (content dimension c = `latent_dim`): item content F_m = N(leaky(W_m f_m + b_m))
(N: row L2 normalisation; the raw features frozen), user preference p = N(P_m).
Routing (`n_routing` rounds): p <- N(p + sum_{i in N(u)} a_ui F_m,i), a_ui = softmax over the
  user's items of <p_u, F_m,i> (the paper; `routing="item_to_user"`). MMRec passes its edges user
  -> item only, so its users receive nothing and routing only re-normalises p
  (`routing="user_to_item"`, the default).
Graph attention on both directions of every training edge, x = [p ; F_m]:
  alpha_m(j -> t) = softmax over the neighbours j of t of <x_t, x_j>;  c_m = x + sum_j alpha_m(j -> t) x_j
Refined edge weight (MMRec: weight_mode confid, pruning on):
  w(j -> t) = relu(max_m alpha_m(j -> t) * K[j, m])      (K: (U+I) x M confidences of the source node)
ID graph on the refined weights (sum aggregation, no activation): x = N(E),
  x1 = S x, x2 = S x1 with S[t, j] = w(j -> t); id_rep = x + x1 + x2.
Representation r = [id_rep | c_1 | ... | c_M] (concat fusion); x_ui = <r_u, r_i>.
Loss: BPR + reg_weight * (mean(E_u^2) + (mean(E_i^2) + mean(E_j^2)) / 2 + sum over image-like m of
  mean(P_m^2) + sum_m mean(P_m,u^2))   (MMRec's elementwise means; the confidences are not
  regularised, as in MMRec, which computes that term and drops it).
Initialisation: E, P_m, K and the weights W_m Xavier-normal; biases PyTorch's default.
Modalities in name order (image before text, as MMRec's v before t).
Noticed and not copied: MMRec crashes with text features alone (`conetent_rep` typo); here one
modality of any kind works.
Deliberate departure: MMRec scores with the representation cached by the last training batch
(one optimiser step old); here it is recomputed from the current weights, since such a cache
cannot coexist with restoring the best validation state. Given the same weights the scores equal
MMRec's (docs/benchmarks.md, "The eight newer models").
Cold item (no training interaction, no edge): its ID part (N(E_i), untrained) is zeroed at scoring;
  it is scored by its content parts alone, c_m,i = F_m,i.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vlmrec.models.content import modality_matrices
from vlmrec.models.mmgcn import is_image, xavier_linear
from vlmrec.models.params import EmbeddingDim
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss

Routing = Literal["user_to_item", "item_to_user"]


def group_softmax(scores: torch.Tensor, group: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of edge `scores` over the edges of each `group` (node) id, as PyG's softmax."""
    top = torch.full((n,), -torch.inf, dtype=scores.dtype, device=scores.device)
    top = top.scatter_reduce(0, group, scores.detach(), "amax")
    ex = torch.exp(scores - top[group])
    total = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add(0, group, ex)
    return ex / (total[group] + 1e-16)


def aggregate(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
    """sum over edges j -> t of w * x_j, at every node t (n nodes)."""
    return torch.zeros(n, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, dst, w[:, None] * x[src])


class GRCNNet(nn.Module):
    """ID embeddings, per-modality preferences and projections, and the node confidences."""

    feats: nn.ParameterList  # frozen raw features, one per modality

    def __init__(self, n_users: int, mats: list[np.ndarray], dim: int, latent: int) -> None:
        super().__init__()
        n_nodes = n_users + mats[0].shape[0]
        self.id_embedding = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_nodes, dim)))
        self.feats = nn.ParameterList([nn.Parameter(torch.tensor(x), requires_grad=False) for x in mats])
        self.preference = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, latent))) for _ in mats]
        )
        self.mlp = nn.ModuleList([xavier_linear(x.shape[1], latent) for x in mats])
        self.confidence = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_nodes, len(mats))))


@register("grcn")
class GRCN(TorchRecommender):
    net: GRCNNet
    uses_features = True

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        latent_dim: Annotated[
            int, Field(ge=1, description="size of each modality's content representation")
        ] = 64,
        n_routing: Annotated[
            int, Field(ge=0, description="routing rounds refining the user preferences (MMRec's n_layers)")
        ] = 3,
        routing: Annotated[
            Routing,
            Field(
                description="routing edges: user_to_item as MMRec (routing then only re-normalises the "
                "preferences) or item_to_user as the paper (users gather their items' content)"
            ),
        ] = "user_to_item",
        reg_weight: Annotated[
            float, Field(ge=0, description="weight of the mean squared ID rows and user preferences")
        ] = 1e-4,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.latent_dim = latent_dim
        self.n_routing = n_routing
        self.routing = routing
        self.reg_weight = reg_weight
        self.training = training

    def _setup(self, dataset, features, rng):
        fsets = self._require_features(features, dataset)
        self.image_ = is_image(fsets)
        coo = dataset.matrix("train").tocoo()
        u = torch.as_tensor(coo.row.astype(np.int64), device=self.device_)
        i = torch.as_tensor(coo.col.astype(np.int64) + dataset.n_users, device=self.device_)
        # both directions of every training edge: user -> item first, then item -> user
        self._src, self._dst = torch.cat([u, i]), torch.cat([i, u])
        self.net = GRCNNet(dataset.n_users, modality_matrices(fsets), self.embedding_dim, self.latent_dim)

    def _content(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_m for every node, alpha_m on every directed edge) of modality m."""
        net, n_u = self.net, self.n_users_
        items = F.normalize(F.leaky_relu(net.mlp[m](net.feats[m])), dim=1)
        p = F.normalize(net.preference[m], dim=1)
        half = len(self._src) // 2
        u, i = self._dst[half:], self._src[half:] - n_u  # the item -> user edges
        for _ in range(self.n_routing):
            if self.routing == "item_to_user":
                a = group_softmax((p[u] * items[i]).sum(-1), u, n_u)
                p = p + aggregate(items, i, u, a, n_u)
            p = F.normalize(p, dim=1)
        x = torch.cat([p, items])
        alpha = group_softmax((x[self._dst] * x[self._src]).sum(-1), self._dst, len(x))
        return x + aggregate(x, self._src, self._dst, alpha, len(x)), alpha

    def _represent(self) -> torch.Tensor:
        """[id_rep | c_1 | ... | c_M] for every node, users then items."""
        parts = [self._content(m) for m in range(len(self.net.feats))]
        conf = self.net.confidence[self._src]
        weight = torch.relu((torch.stack([a for _, a in parts], 1) * conf).max(1).values)
        x = F.normalize(self.net.id_embedding, dim=1)
        x1 = aggregate(x, self._src, self._dst, weight, len(x))
        x2 = aggregate(x1, self._src, self._dst, weight, len(x))
        return torch.cat([x + x1 + x2] + [c for c, _ in parts], 1)

    def _batch_loss(self, users, pos, neg):
        r = self._represent()
        n_u = self.n_users_
        loss = bpr_loss(r[users], r[n_u + pos], r[n_u + neg])
        e = self.net.id_embedding
        reg = (e[users] ** 2).mean() + ((e[n_u + pos] ** 2).mean() + (e[n_u + neg] ** 2).mean()) / 2
        for pref, im in zip(self.net.preference, self.image_):
            reg = reg + (pref[users] ** 2).mean() + ((pref**2).mean() if im else 0.0)
        return loss + self.reg_weight * reg

    def _final_embeddings(self):
        r = self._represent()
        return r[: self.n_users_], r[self.n_users_ :]

    def _cold_final_embeddings(self):
        u, i = self._final_embeddings()
        i = i.clone()
        i[torch.as_tensor(self.cold_items_, device=i.device), : self.embedding_dim] = 0
        return u, i
