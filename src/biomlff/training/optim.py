"""Optimiser, learning-rate schedule and fine-tuning strategies (optax).

Schedule: linear warm-up from 0 over ``warmup_steps``, then lr · decay_rate^(step / decay_steps)
(continuous exponential decay). The thesis trained SO3LR v1.0 with lr 1e-3, × 0.85 every 500k
steps over 5.15M steps, i.e. about ten decay periods per run: ``decay_steps="auto"`` keeps that
shape for any dataset (total steps / 10). Gradients are clipped to a global norm before the update.

Strategies mark which leaves of the parameter tree train (the rest get zero updates):
``full`` (and ``scratch``) all; ``freeze-embedding`` all but the atom/charge/spin embeddings;
``last-layer+heads`` only the last message-passing layer and the output heads.
"""

from __future__ import annotations


def schedule(lr: float, warmup_steps: int, decay_rate: float, decay_steps: int):
    import optax

    decay = optax.exponential_decay(lr, transition_steps=max(int(decay_steps), 1), decay_rate=decay_rate)
    if warmup_steps <= 0:
        return decay
    warm = optax.linear_schedule(0.0, lr, int(warmup_steps))
    return optax.join_schedules([warm, decay], [int(warmup_steps)])


def trainable_labels(params, strategy: str, num_layers: int) -> dict:
    """Tree of 'train' / 'freeze' labels for ``strategy`` (see module docstring)."""

    def label(top: str) -> str:
        if strategy in ("full", "scratch"):
            return "train"
        if strategy == "freeze-embedding":
            return "freeze" if top.startswith("feature_embeddings") else "train"
        if strategy == "last-layer+heads":
            return "train" if top == f"layers_{num_layers - 1}" or top.startswith("observables") else "freeze"
        raise ValueError(strategy)

    def walk(tree, lab):
        return {k: walk(v, lab) if isinstance(v, dict) else lab for k, v in tree.items()}

    return {k: walk(v, label(k)) if isinstance(v, dict) else label(k) for k, v in params.items()}


def make_optimizer(cfg, params, total_steps: int, num_layers: int):
    """optax GradientTransformation for a :class:`~biomlff.training.config.TrainConfig`."""
    import optax

    decay_steps = max(total_steps // 10, 1) if cfg.decay_steps == "auto" else int(cfg.decay_steps)
    lr = schedule(cfg.lr, cfg.warmup_steps, cfg.decay_rate, decay_steps)
    if cfg.optimizer == "amsgrad":
        opt = optax.amsgrad(lr)
    elif cfg.optimizer == "adam":
        opt = optax.adam(lr)
    else:
        opt = optax.adamw(lr, weight_decay=cfg.weight_decay)
    chain = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    tx = optax.chain(*chain, opt)
    if cfg.strategy in ("full", "scratch"):
        return tx, lr
    labels = trainable_labels(params, cfg.strategy, num_layers)
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels), lr
