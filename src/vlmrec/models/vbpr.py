"""VBPR (He & McAuley, AAAI 2016), as in MMRec's VBPR.

f_i: the item's raw content, the FeatureSets concatenated as given (MMRec feeds the raw
  concatenated features; `normalise_features=True` L2-normalises each set first, recorded in the
  cell's parameters).
Item i = [gamma_i | E f_i + b] (id_dim + content_dim), user u = [gamma_u | theta_u]; x_ui = <u, i>.
  E, b: one linear layer (the reference's only bias term: <theta_u, b> is a per-user offset).
`item_bias=True` adds the paper's beta_i + <beta', f_i>.
L = BPR + reg * (||U_B|| + ||I_B+|| + ||I_B-|| [+ ||beta_B+|| + ||beta_B-||]) / B  (EmbLoss on the
  full user and item rows of the batch).
Initialisation: Xavier-uniform for the user (n_users x (id_dim + content_dim)) and item ID
matrices, Xavier-normal for E, zero biases. `id_dim=0` gives the content-only variant, used to
test that the content part alone carries signal.
Cold item (no training interaction): scored by its content part only, i = [0 | E f_i + b] (ID
  part gamma_i zeroed; with `item_bias`, beta_i dropped and <beta', f_i> kept).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import nn

from vlmrec.models.content import l2_rows, modality_matrices
from vlmrec.models.params import EmbLossReg
from vlmrec.models.registry import register
from vlmrec.models.torch_base import TorchRecommender, TrainingParams, bpr_loss, emb_loss


class VBPRNet(nn.Module):
    """User rows [gamma_u | theta_u], item ID rows gamma_i, the content projection E f + b."""

    def __init__(
        self, n_users: int, feats: torch.Tensor, id_dim: int, content_dim: int, item_bias: bool
    ) -> None:
        super().__init__()
        n_items = feats.shape[0]
        self.register_buffer("feats", feats)
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, id_dim + content_dim)))
        self.item_id = nn.Parameter(
            nn.init.xavier_uniform_(torch.empty(n_items, id_dim)) if id_dim else torch.empty(n_items, 0)
        )
        self.project = nn.Linear(feats.shape[1], content_dim)
        nn.init.xavier_normal_(self.project.weight)
        nn.init.zeros_(self.project.bias)
        self.bias = nn.Parameter(torch.zeros(n_items)) if item_bias else None
        self.content_bias = nn.Linear(feats.shape[1], 1, bias=False) if item_bias else None
        if self.content_bias is not None:
            nn.init.zeros_(self.content_bias.weight)

    def items(self) -> torch.Tensor:
        """Item rows [gamma_i | E f_i + b]."""
        return torch.cat([self.item_id, self.project(self.feats)], 1)

    def item_biases(self) -> torch.Tensor:
        """beta_i + <beta', f_i> (paper variant only)."""
        assert self.bias is not None and self.content_bias is not None
        return self.bias + self.content_bias(self.feats).squeeze(-1)


@register("vbpr")
class VBPR(TorchRecommender):
    net: VBPRNet
    uses_features = True

    def __init__(
        self,
        id_dim: Annotated[
            int, Field(ge=0, description="size of the ID part of the item and user vectors (0: content only)")
        ] = 64,
        content_dim: Annotated[int, Field(ge=1, description="size of the projected content part E f_i")] = 64,
        reg: EmbLossReg = 1e-4,
        normalise_features: Annotated[
            bool, Field(description="L2-normalise each feature set before concatenation (reference: raw)")
        ] = False,
        item_bias: Annotated[
            bool,
            Field(
                description="add the paper's beta_i + <beta', f_i> (MMRec has only its linear layer's bias)"
            ),
        ] = False,
        training: TrainingParams = TrainingParams(),
    ) -> None:
        self.id_dim = id_dim
        self.content_dim = content_dim
        self.reg = reg
        self.normalise_features = normalise_features
        self.item_bias = item_bias
        self.training = training

    def _setup(self, dataset, features, rng):
        mats = modality_matrices(self._require_features(features, dataset))
        if self.normalise_features:
            mats = [l2_rows(x) for x in mats]
        feats = torch.as_tensor(np.hstack(mats).astype(np.float32))
        self.net = VBPRNet(dataset.n_users, feats, self.id_dim, self.content_dim, self.item_bias)

    def _batch_loss(self, users, pos, neg):
        net = self.net
        items = net.items()
        u, i, j = net.user[users], items[pos], items[neg]
        if net.bias is None:
            return bpr_loss(u, i, j) + self.reg * emb_loss(u, i, j)
        b = net.item_biases()
        diff = (u * i).sum(-1) + b[pos] - (u * j).sum(-1) - b[neg]
        return -nn.functional.logsigmoid(diff).mean() + self.reg * emb_loss(u, i, j, b[pos], b[neg])

    def _cold_final_embeddings(self):
        users, items = self._final_embeddings()
        cold = torch.as_tensor(self.cold_items_, device=items.device)
        items = items.clone()
        items[cold, : self.id_dim] = 0
        if self.net.bias is not None:
            assert self.net.content_bias is not None
            items[cold, -1] = self.net.content_bias(self.net.feats[cold]).squeeze(-1)
        return users, items

    def _final_embeddings(self):
        users, items = self.net.user, self.net.items()
        if self.net.bias is None:
            return users, items
        ones = torch.ones(len(users), 1, device=users.device)
        return torch.cat([users, ones], 1), torch.cat([items, self.net.item_biases().unsqueeze(1)], 1)
