"""BPR-MF (Rendle et al. 2009), as in MMRec's BPR.

x_ui = <p_u, q_i> (+ b_i with `item_bias=True`, Cornac's form)
L = -mean_{(u,i,j)} ln sigma(x_ui - x_uj) + reg * (||P_B|| + ||Q_B+|| + ||Q_B-|| [+ ||b_B+|| + ||b_B-||]) / B
    (MMRec's EmbLoss: unsquared Frobenius norms of the batch rows over the batch size B)
Initialisation: Xavier-normal embeddings, zero biases (MMRec's xavier_normal_initialization).
Cold item (no training interaction): the lowest score, below every warm item (its ID embedding
  was never trained; `demote_cold_factors`).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from vlmrec.models.params import EmbeddingDim, EmbLossReg
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, emb_loss


class BPRMFNet(nn.Module):
    """User and item embeddings, and an optional item bias."""

    def __init__(self, n_users: int, n_items: int, dim: int, item_bias: bool) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)
        self.bias = nn.Embedding(n_items, 1) if item_bias else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item matrices whose dot product is x_ui (a ones column carries the bias)."""
        if self.bias is None:
            return self.user.weight, self.item.weight
        ones = torch.ones(self.user.num_embeddings, 1, device=self.user.weight.device)
        return torch.cat([self.user.weight, ones], 1), torch.cat([self.item.weight, self.bias.weight], 1)


@register("bprmf")
class BPRMF(TorchRecommender):
    net: BPRMFNet

    def __init__(
        self,
        embedding_dim: EmbeddingDim = 64,
        reg: EmbLossReg = 1e-4,
        item_bias: Annotated[
            bool, Field(description="add an item bias term (not in the reference code)")
        ] = False,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.embedding_dim = embedding_dim
        self.reg = reg
        self.item_bias = item_bias
        self.training = training

    def _setup(self, dataset, features, rng):
        self.net = BPRMFNet(dataset.n_users, dataset.n_items, self.embedding_dim, self.item_bias)

    def _batch_loss(self, users, pos, neg):
        net = self.net
        u, i, j = net.user(users), net.item(pos), net.item(neg)
        if net.bias is None:
            return bpr_loss(u, i, j) + self.reg * emb_loss(u, i, j)
        bi, bj = net.bias(pos).squeeze(-1), net.bias(neg).squeeze(-1)
        diff = (u * i).sum(-1) + bi - (u * j).sum(-1) - bj
        return -nn.functional.logsigmoid(diff).mean() + self.reg * emb_loss(u, i, j, bi, bj)

    def _final_embeddings(self):
        return self.net.factors()
