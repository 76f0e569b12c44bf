"""VBPR (He & McAuley, AAAI 2016): BPR-MF plus a learned projection of item content.

x_ui = beta_i + <gamma_u, gamma_i> + <theta_u, E f_i> + <beta', f_i>
f_i: item content (FeatureSets row-normalised and concatenated); E: D x F projection;
beta': the visual (content) bias. Loss: BPR with L2 on gamma, theta, beta (E and beta' are
regularised by weight decay `reg_content`). `id_dim=0` gives the content-only variant, used to
test that the content part alone carries signal.
"""

from __future__ import annotations

import torch
from torch import nn

from vlmrec.models.base import register
from vlmrec.models.content import concat_normalised
from vlmrec.models.torch_base import TorchRecommender, l2


class _VBPRNet(nn.Module):
    def __init__(self, n_users, n_items, feats, id_dim, content_dim):
        super().__init__()
        self.register_buffer("feats", feats)
        self.id_dim = id_dim
        self.user_id = nn.Embedding(n_users, max(id_dim, 1))
        self.item_id = nn.Embedding(n_items, max(id_dim, 1))
        self.user_content = nn.Embedding(n_users, content_dim)
        self.item_bias = nn.Embedding(n_items, 1)
        self.E = nn.Linear(feats.shape[1], content_dim, bias=False)
        self.content_bias = nn.Linear(feats.shape[1], 1, bias=False)
        for emb in (self.user_id, self.item_id, self.user_content):
            nn.init.xavier_uniform_(emb.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.content_bias.weight)
        nn.init.xavier_uniform_(self.E.weight)
        if id_dim == 0:
            for p in (self.user_id.weight, self.item_id.weight):
                p.data.zero_()
                p.requires_grad_(False)

    def factors(self):
        """User and item factor matrices whose dot product is x_ui."""
        ones = torch.ones(self.user_id.num_embeddings, 1, device=self.feats.device)
        users = torch.cat([self.user_id.weight, self.user_content.weight, ones], 1)
        item_bias = self.item_bias.weight + self.content_bias(self.feats)
        items = torch.cat([self.item_id.weight, self.E(self.feats), item_bias], 1)
        return users, items

    def score_pairs(self, u, i):
        f = self.feats[i]
        return (
            self.item_bias(i).squeeze(-1)
            + (self.user_id(u) * self.item_id(i)).sum(-1)
            + (self.user_content(u) * self.E(f)).sum(-1)
            + self.content_bias(f).squeeze(-1)
        )


@register("vbpr")
class VBPR(TorchRecommender):
    uses_features = True

    def __init__(
        self,
        id_dim: int = 32,
        content_dim: int = 32,
        reg: float = 1e-4,
        reg_content: float = 1e-5,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 5e-3,
        patience: int = 10,
        eval_every: int = 1,
        device: str = "auto",
    ) -> None:
        self.id_dim = id_dim
        self.content_dim = content_dim
        self.reg = reg
        self.reg_content = reg_content
        self._init_training(epochs, batch_size, lr, patience, eval_every, device)

    def _setup(self, dataset, features, rng):
        feats = torch.as_tensor(concat_normalised(self._require_features(features, dataset)))
        self.net = _VBPRNet(dataset.n_users, dataset.n_items, feats, self.id_dim, self.content_dim)

    def _batch_loss(self, users, pos, neg):
        net = self.net
        diff = net.score_pairs(users, pos) - net.score_pairs(users, neg)
        reg = l2(
            net.user_id(users),
            net.item_id(pos),
            net.item_id(neg),
            net.user_content(users),
            net.item_bias(pos),
            net.item_bias(neg),
        )
        content_reg = sum(p.pow(2).sum() for p in (net.E.weight, net.content_bias.weight)) / 2
        return -torch.nn.functional.logsigmoid(diff).mean() + self.reg * reg + self.reg_content * content_reg

    def _final_embeddings(self):
        return self.net.factors()
