"""Graphs the graph models share: the normalised user-item adjacency and item-item kNN graphs."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def sym_normalise(adj: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with D the row sums, on both sides (as the references do, also for the
    non-symmetric kNN graphs). Rows whose sum is not positive get 0 (the references would give
    inf or NaN there)."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    deg = np.asarray(adj.sum(1)).ravel()
    inv = np.zeros_like(deg)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5
    d = sp.diags(inv)
    return (d @ adj @ d).tocsr().astype(np.float32)


def user_item_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """The (U+I) x (U+I) bipartite adjacency [[0, R], [R^T, 0]], symmetrically normalised."""
    r = sp.csr_matrix(train, dtype=np.float32)
    adj = sp.bmat([[None, r], [r.T, None]], format="csr")
    return sym_normalise(adj)


def user_item_adjacency_self_loops(train: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1 (A + I) on the (U+I) x (U+I) bipartite graph, D the row sums of A + I: the user-item
    propagation matrix of the LATTICE reference code (not LightGCN's D^-1/2 A D^-1/2)."""
    r = sp.csr_matrix(train, dtype=np.float32)
    adj = sp.bmat([[None, r], [r.T, None]], format="csr") + sp.eye(sum(r.shape), dtype=np.float32)
    deg = np.asarray(adj.sum(1)).ravel()
    return (sp.diags(1.0 / deg) @ adj).tocsr().astype(np.float32)


def to_torch_sparse(m: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    coo = sp.coo_matrix(m)
    idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
    t = torch.sparse_coo_tensor(
        idx, torch.as_tensor(coo.data, dtype=torch.float32), coo.shape, check_invariants=False
    )
    return t.coalesce().to(device)


def knn_entries(
    z: torch.Tensor, k: int, *, include_self: bool = True, block: int = 2048
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, values) of the k largest cosine similarities of each row of z; values keep
    their gradient (LATTICE learns its graph through them). As in the LATTICE/FREEDOM references
    the item itself is a candidate (its similarity 1 makes it one of its own k neighbours);
    `include_self=False` excludes it. Row blocks bound memory at block x n."""
    zn = torch.nn.functional.normalize(z, dim=1)
    rows, cols, vals = [], [], []
    for start in range(0, len(z), block):
        sim = zn[start : start + block] @ zn.T
        idx = torch.arange(start, start + len(sim), device=z.device)
        if not include_self:
            sim = sim.index_put((torch.arange(len(idx), device=z.device), idx), torch.tensor(-torch.inf))
        top = torch.topk(sim, k, dim=1)
        rows.append(idx.repeat_interleave(k))
        cols.append(top.indices.reshape(-1))
        vals.append(top.values.reshape(-1))
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def cosine_knn(
    features: np.ndarray, k: int, *, weighted: bool = False, include_self: bool = True, block: int = 2048
) -> sp.csr_matrix:
    """Item-item kNN graph (see `knn_entries`) as CSR; edge values 1 (FREEDOM) or the cosine
    similarity (`weighted`, LATTICE's prior)."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n = len(x)
    k = min(k, n if include_self else n - 1)
    with torch.no_grad():
        rows, cols, vals = knn_entries(x, k, include_self=include_self, block=block)
    data = vals.numpy() if weighted else np.ones(n * k, dtype=np.float32)
    return sp.csr_matrix((data, (rows.numpy(), cols.numpy())), shape=(n, n))


def knn_normalised(features: np.ndarray, k: int, *, weighted: bool = False) -> sp.csr_matrix:
    """kNN graph (self included) with the references' normalisation D^-1/2 S D^-1/2."""
    return sym_normalise(cosine_knn(features, k, weighted=weighted))
