"""One line of meaning per model hyperparameter, for the typed spec (`param_spec`), `--help`-style
listings and docs/config.md. Shared names mean the same thing in every model that takes them;
`MODEL_PARAM_DOCS` holds the meanings that depend on the model. Each model's docstring has the
equations."""

from __future__ import annotations

PARAM_DOCS: dict[str, str] = {
    # training loop (the six torch models, MMRec's defaults)
    "epochs": "maximum training epochs (early stopping may end sooner)",
    "batch_size": "training triples (or pairs) per optimiser step",
    "lr": "Adam learning rate",
    "patience": "validation rounds without improvement before early stopping",
    "eval_every": "epochs between validation rounds",
    "lr_decay": "learning rate x lr_decay ** (epoch / lr_decay_step) (MMRec's scheduler; 1 = constant)",
    "lr_decay_step": "epochs per lr_decay step",
    "negatives": "where BPR negatives come from: items seen in training (the references) or all items",
    "device": "auto (CUDA when available), cpu or cuda[:N]",
    # embeddings and graphs
    "embedding_dim": "size of the user and item ID embeddings",
    "feat_embed_dim": "size of the projected modality features",
    "n_layers": "graph propagation layers",
    "n_ui_layers": "propagation layers on the user-item graph",
    "n_mm_layers": "propagation layers on the item-item (content) graph",
    "knn_k": "neighbours kept per item in the content kNN graph (the item itself included)",
    "train_features": "train a copy of the raw features, as the reference does (false: frozen)",
    "dropout": "share of user-item edges dropped per epoch",
    "reg_weight": "weight of the model's auxiliary loss term (see its docstring)",
    "reg": "L2 weight on the batch's embeddings (MMRec's EmbLoss: norm / batch size)",
    "item_bias": "add an item bias term (not in the reference code)",
    # neighbourhood and closed-form models
    "k": "neighbours kept per item",
    "block": "items per block when building the similarity matrix (memory vs speed only)",
    "shrink": "shrinkage added to the similarity denominator (damps low-support pairs)",
    "similarity": "item-item similarity function",
    "normalize": "scale each item's kept similarities to sum to 1",
    "max_items": "refuse catalogues above this size (the dense item-item matrix would not fit)",
    "factors": "latent factors per user and item",
    "iterations": "alternating least-squares sweeps",
    "cg_steps": "conjugate-gradient steps per least-squares solve",
    "init_std": "standard deviation of the initial factors",
}

MODEL_PARAM_DOCS: dict[str, dict[str, str]] = {
    "vbpr": {
        "id_dim": "size of the ID part of the item and user vectors (0: content only)",
        "content_dim": "size of the projected content part E f_i",
        "normalise_features": "L2-normalise each feature set before concatenation (reference: raw)",
        "item_bias": "add the paper's beta_i + <beta', f_i> (MMRec has only its linear layer's bias)",
    },
    "lattice": {
        "lambda_coeff": "weight of the frozen prior graph against the learned one",
        "ui_norm": "user-item propagation matrix: D^-1 (A + I) (reference) or D^-1/2 A D^-1/2",
        "reg": "L2 weight on the final embeddings: sum of squares / (2 x batch size), as the reference",
    },
    "freedom": {
        "image_weight": "weight of image-like feature sets in the frozen item graph",
        "reg_weight": "weight of the modality projection BPR losses",
        "reg": "optional extra L2 (EmbLoss form; 0 as the reference)",
    },
    "bm3": {
        "cl_weight": "weight of the alignment and masked-reconstruction losses",
        "reg_weight": "L2 weight on the encoder outputs",
        "dropout": "dropout of the target view",
    },
    "ease": {"reg": "lambda, the L2 weight on B (must be > 0; choose it on validation)"},
    "ials": {
        "reg": "lambda, the L2 weight on user and item factors",
        "alpha": "confidence weight: c_ui = 1 + alpha r_ui",
    },
    "itemknn": {"alpha": "asymmetric cosine exponent (0.5 = cosine; 1 = P(j | i))"},
    "profilematch": {
        "aggregation": "user profile: mean of the history, its last N items, or recency-weighted",
        "last_n": "history items used by aggregation=last",
        "decay": "aggregation=recency: weight decay ** (age rank), newest item rank 0",
    },
}


def describe_param(model: str, name: str) -> str:
    """The meaning of hyperparameter `name` of `model` ("" when none is written down)."""
    return MODEL_PARAM_DOCS.get(model, {}).get(name) or PARAM_DOCS.get(name, "")
