"""Training the zoo's tokenizer and language model: a byte-level BPE tokenizer and a small GPT-style
TransformerLens ``HookedTransformer``, trained from scratch on the stdlib docstrings (see ``corpus``).

The runtime half (loading, the model's spec) is ``sae_checks.zoo.lm``, re-exported here so the builder
reads ``lm.make_model`` etc. from one place. torch is imported at module level.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sae_checks.zoo.lm import (  # noqa: F401 -- re-exported for the builder
    BOS,
    DEPRECATION_MESSAGE,
    MODEL_NAME,
    ModelSpec,
    load_model,
    load_tokenizer,
    make_model,
)

# ---------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Sequence[str], vocab_size: int, out_dir: Path) -> Any:
    """Train a byte-level BPE tokenizer, save it in the Hugging Face format, and return it reloaded.

    Reloading from the folder matters: TransformerLens' ``set_tokenizer`` re-opens the tokenizer by its
    ``name_or_path``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=BOS,
        pad_token=BOS,
        unk_token=BOS,
        model_max_length=10**6,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return load_tokenizer(out_dir)


def encode_documents(tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """One token stream: each document's tokens followed by EOS (= BOS). int64 (n_tokens,)."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def pack(stream: torch.Tensor, n_ctx: int, bos: int, max_seqs: int | None = None) -> torch.Tensor:
    """Consecutive, non-overlapping rows of ``n_ctx - 1`` stream tokens, each with BOS prepended. (N, n_ctx)."""
    n = (stream.numel() // (n_ctx - 1)) if max_seqs is None else min(max_seqs, stream.numel() // (n_ctx - 1))
    body = stream[: n * (n_ctx - 1)].view(n, n_ctx - 1)
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)


def random_windows(stream: torch.Tensor, n: int, length: int, bos: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` windows of ``length - 1`` consecutive stream tokens at random offsets, BOS prepended. (n, length)."""
    starts = torch.randint(0, stream.numel() - length, (n,), generator=gen)
    idx = starts[:, None] + torch.arange(length - 1)[None, :]
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), stream[idx]], dim=1)


# ---------------------------------------------------------------- model


def save_model(model: Any, spec: ModelSpec, out_dir: Path) -> None:
    """``config.json`` (the ModelSpec) and ``model.safetensors`` (parameters only, float32)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(spec.__dict__, indent=2, sort_keys=True) + "\n")
    params = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.named_parameters()}
    save_file(params, str(out_dir / "model.safetensors"))


@dataclass(frozen=True, kw_only=True)
class LMTraining:
    steps: int = 720  # optimizer steps
    batch_size: int = 8  # sequences of n_ctx tokens per step (small: more updates for the same compute)
    lr: float = 3e-3  # peak AdamW learning rate (cosine decay to 10% after warmup)
    warmup: int = 60  # linear warmup steps
    weight_decay: float = 0.05  # on matrices only; embeddings and biases are not decayed
    grad_clip: float = 1.0
    embed_init_std: float = 0.25  # W_E init std; W_pos starts sinusoidal with the same vector norm (~2.8,
    # not TransformerLens' ~0.8), so token and position signals keep a real share of the residual stream
    repeat_share: float = 0.5  # share of rows that repeat a random stretch of text (period 8..127):
    # gives copying (induction) a strong training signal
    induction_init: bool = True  # start blocks 0-1 with a hand-set induction circuit (init_induction):
    # plain training does not find induction heads within the CPU build budget
    seed: int = 0


def sinusoids(n_ctx: int, n_freq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(omega (n_freq,), table (n_ctx, 2 n_freq)), float64: table[p] = (sin(p w_i), cos(p w_i))_i, row
    norm sqrt(n_freq), with periods 2 pi / w_i spread geometrically from 4 to 4 n_ctx."""
    periods = 4.0 * n_ctx ** (torch.arange(n_freq, dtype=torch.float64) / max(1, n_freq - 1))
    omega = 2 * math.pi / periods
    angles = torch.arange(n_ctx, dtype=torch.float64)[:, None] * omega[None, :]
    return omega, torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(n_ctx, 2 * n_freq)


def init_embeddings(model: Any, std: float, seed: int) -> None:
    """Re-draw W_E from N(0, std^2) and set W_pos to sinusoids of the same expected norm (both still learned).

    W_pos[p] = (sin(p w_i), cos(p w_i))_i with periods 2 pi / w_i spread geometrically from 4 to 4 n_ctx.
    A smooth start makes "previous token" attention (and so induction) easy to learn; random position
    vectors make it nearly impossible in a short run. The long periods also make positions past any
    short training context look new to an SAE, as gpt2's learned positions do.
    """
    gen = torch.Generator().manual_seed(seed + 7)
    n_ctx, d = model.W_pos.shape
    _, pos = sinusoids(n_ctx, d // 2)  # row norm sqrt(d/2)
    with torch.no_grad():
        model.embed.W_E.copy_(torch.randn(model.embed.W_E.shape, generator=gen) * std)
        model.pos_embed.W_pos.copy_((pos * (std * math.sqrt(d) / math.sqrt(d / 2))).to(model.W_pos.dtype))


def init_induction(
    model: Any,
    std: float,
    seed: int,
    *,
    alpha: float = 8.0,
    beta: float = 3.0,
    gamma: float = 1.0,
    delta: float = 1.0,
    quiet: float = 0.1,
) -> dict[str, float]:
    """Re-draw the embeddings in separate subspaces and hand-set an induction circuit in blocks 0 and 1.

    Without it, the zoo model does not learn to copy within the CPU build budget (measured: after 1200
    steps, first-token cloze accuracy 0.055, no drop in CE on repeated random tokens), and a Lambada-style
    task is then meaningless. This is the textbook two-head circuit (Olsson et al. 2022), written in
    directly; training then starts from it and is free to change it. Residual-stream layout
    (d_model = 4 d_head, d_head even):

    - TOK ``[0, 2 d_head)``: token embeddings with the expected norm of N(0, std^2) entries over all
      of d_model (so the same ``embed_init_std`` means the same norm with or without this init);
    - POS ``[2 d_head, 3 d_head)``: sinusoidal positions, d_head / 2 frequencies with periods spread
      geometrically from 4 to 4 n_ctx, the whole position vector scaled to the token embedding's
      expected norm;
    - PREV ``[3 d_head, 4 d_head)``: empty; block 0 head 0 writes the previous token there.

    Block 0 head 0 (previous-token head): its query is its position rotated back by one step, its key
    its position, so it attends to p - 1; it copies a fixed random projection ``R`` of that token's
    embedding into PREV. Block 1 head 0 (induction head): query ``R``-projected current token, key PREV,
    so it attends to the positions whose previous token is the current one; it writes their token's
    projection ``tok R R^T`` (rank d_head of the 2 d_head TOK dimensions) back into TOK, where the
    unembedding can learn to read it. The subspaces are separate only up to ``ln1``: its mean subtraction
    adds a common vector to every dimension and its scale varies by position, which the measured
    accuracies below include. Every other head's output and the
    MLP outputs of blocks 0 and 1 start ``quiet`` times as large so their noise does not swamp PREV.
    ``alpha`` and ``beta`` scale the two query matrices (attention sharpness), ``gamma`` and ``delta``
    the two output matrices; the defaults give both heads about 0.97 attention accuracy on the zoo.

    Returns the circuit's attention accuracy at init on repeated random tokens (previous-token head:
    share of queries whose top key is p - 1; induction head: share whose top key is the position after
    the previous occurrence), so a build can print that the circuit is in place.
    """
    cfg = model.cfg
    d, dh, n_ctx = cfg.d_model, cfg.d_head, cfg.n_ctx
    if d != 4 * dh or dh % 2 or cfg.n_layers < 2 or cfg.positional_embedding_type != "standard":
        raise ValueError(
            f"init_induction needs d_model = 4 * d_head with d_head even, >= 2 layers and learned "
            f"positions; got d_model={d}, d_head={dh}, n_layers={cfg.n_layers}, "
            f"positional_embedding_type={cfg.positional_embedding_type!r}"
        )
    tok, pos, prev = slice(0, 2 * dh), slice(2 * dh, 3 * dh), slice(3 * dh, 4 * dh)
    gen = torch.Generator().manual_seed(seed + 7)
    n_freq = dh // 2
    omega, pos_table = sinusoids(n_ctx, n_freq)  # (n_freq,), (n_ctx, dh) with row norm sqrt(n_freq)
    tok_norm = std * math.sqrt(d)
    rot = torch.zeros(dh, dh, dtype=torch.float64)  # pos(p) @ rot = pos(p - 1)
    for i, w in enumerate(omega.tolist()):
        c, s = math.cos(w), math.sin(w)
        rot[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    proj, _ = torch.linalg.qr(torch.randn(2 * dh, dh, generator=gen, dtype=torch.float64))  # (2 dh, dh)

    def f32(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.float32)

    with torch.no_grad():
        W_E = torch.zeros_like(model.embed.W_E)
        W_E[:, tok] = torch.randn(W_E.shape[0], 2 * dh, generator=gen) * (tok_norm / math.sqrt(2 * dh))
        model.embed.W_E.copy_(W_E)
        W_pos = torch.zeros_like(model.pos_embed.W_pos)
        W_pos[:, pos] = f32(pos_table * (tok_norm / math.sqrt(n_freq)))
        model.pos_embed.W_pos.copy_(W_pos)
        prev_head, ind_head = model.blocks[0].attn, model.blocks[1].attn
        for attn in (prev_head, ind_head):
            for W in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O):
                W[0].zero_()
            for b in (attn.b_Q, attn.b_K, attn.b_V):
                b[0].zero_()
        prev_head.W_Q[0, pos] = f32(alpha * rot)
        prev_head.W_K[0, pos] = torch.eye(dh)
        prev_head.W_V[0, tok] = f32(proj)
        prev_head.W_O[0, :, prev] = gamma * torch.eye(dh)
        ind_head.W_Q[0, tok] = f32(beta * proj)
        ind_head.W_K[0, prev] = torch.eye(dh)
        ind_head.W_V[0, tok] = f32(proj)
        ind_head.W_O[0, :, tok] = f32(delta * proj.T)
        for block in model.blocks[:2]:
            block.attn.W_O[1:] *= quiet
            block.mlp.W_out *= quiet
    return induction_attention(model, seed=seed)


def repeated_random_tokens(model: Any, n: int, length: int, seed: int) -> tuple[torch.Tensor, int]:
    """(BOS + ``length`` random tokens + the same tokens again (n, 2 length + 1), length), ``length``
    capped so the rows fit n_ctx."""
    gen = torch.Generator().manual_seed(seed)
    length = min(length, (model.cfg.n_ctx - 1) // 2)
    rand = torch.randint(1, model.cfg.d_vocab, (n, length), generator=gen)
    return torch.cat([torch.full((n, 1), model.tokenizer.bos_token_id), rand, rand], dim=1), length


@torch.no_grad()
def induction_attention(model: Any, n: int = 16, length: int = 60, seed: int = 0) -> dict[str, float]:
    """Attention accuracy of block 0 head 0 (top key = p - 1) and block 1 head 0 (top key = the position
    after the previous occurrence of the current token) on ``length`` random tokens repeated once."""
    toks, length = repeated_random_tokens(model, n, length, seed)
    names = ("blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern")
    _, cache = model.run_with_cache(toks, names_filter=lambda name: name in names, stop_at_layer=2)
    q = torch.arange(length + 1, 2 * length + 1)  # queries in the repeat
    prev_top = cache[names[0]][:, 0, q].argmax(-1)  # (n, length)
    ind_top = cache[names[1]][:, 0, q].argmax(-1)
    return {
        "prev_token": (prev_top == (q - 1)[None]).float().mean().item(),
        "induction": (ind_top == (q - length + 1)[None]).float().mean().item(),
    }


def training_batch(
    stream: torch.Tensor, cfg: LMTraining, n_ctx: int, bos: int, gen: torch.Generator
) -> torch.Tensor:
    """``batch_size`` rows of ``n_ctx`` tokens, BOS first: random windows of the stream, and in a
    ``repeat_share`` of rows a random stretch of ``period`` tokens repeated to fill the row. (B, n_ctx)."""
    batch = random_windows(stream, cfg.batch_size, n_ctx, bos, gen)
    n_rep = round(cfg.repeat_share * cfg.batch_size)
    for row in range(n_rep):
        period = int(torch.randint(8, min(128, n_ctx - 1), (1,), generator=gen))
        batch[row, 1:] = batch[row, 1 : 1 + period].repeat((n_ctx - 1) // period + 1)[: n_ctx - 1]
    return batch


def train_model(model: Any, stream: torch.Tensor, cfg: LMTraining, *, log_every: int = 80) -> list[float]:
    """AdamW on random ``n_ctx`` windows of the training stream (BOS first). Returns the loss per step.

    Embeddings are re-initialized at ``embed_init_std`` and not weight-decayed, so every position keeps
    a real norm (see :class:`LMTraining`).
    """
    n_ctx = model.cfg.n_ctx
    bos = model.tokenizer.bos_token_id
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.induction_init:
        acc = init_induction(model, cfg.embed_init_std, cfg.seed)
        print(
            f"  hand-set induction circuit: previous-token head {acc['prev_token']:.2f}, "
            f"induction head {acc['induction']:.2f} attention accuracy at init",
            flush=True,
        )
    else:
        init_embeddings(model, cfg.embed_init_std, cfg.seed)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in ("embed.W_E", "pos_embed.W_pos") else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    losses = []
    t0 = time.time()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = training_batch(stream, cfg, n_ctx, bos, gen)
        loss = model(batch, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if log_every and (step % log_every == 0 or step == cfg.steps - 1):
            print(
                f"  lm step {step:4d}/{cfg.steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)",
                flush=True,
            )
    model.eval()
    return losses


@torch.no_grad()
def heldout_ce(model: Any, tokens: torch.Tensor, batch_size: int = 16) -> float:
    """Mean next-token CE over every prediction made at positions 0..T-2 of ``tokens`` (N, T)."""
    total, count = 0.0, 0
    for i in range(0, tokens.shape[0], batch_size):
        ce = model(tokens[i : i + batch_size], return_type="loss", loss_per_token=True)  # (B, T-1)
        total += ce.double().sum().item()
        count += ce.numel()
    return total / count


def unigram_ce(train_stream: torch.Tensor, tokens: torch.Tensor, vocab: int) -> float:
    """CE of an add-one-smoothed unigram model fit on the training stream, on the same targets as
    :func:`heldout_ce` (tokens[:, 1:])."""
    counts = torch.bincount(train_stream, minlength=vocab).double() + 1.0
    logp = (counts / counts.sum()).log()
    return -logp[tokens[:, 1:].reshape(-1)].mean().item()


@torch.no_grad()
def induction_ce(model: Any, n: int = 16, length: int = 60, seed: int = 0) -> tuple[float, float]:
    """Mean CE on ``length`` random tokens and on the same tokens repeated right after them (BOS first).

    A model that copies (induction heads) predicts the repeat far better than the first pass.
    """
    toks, length = repeated_random_tokens(model, n, length, seed)
    ce = model(
        toks, return_type="loss", loss_per_token=True
    )  # (n, 2 * length); ce[:, t] predicts toks[:, t + 1]
    return ce[:, 1:length].mean().item(), ce[:, length:].mean().item()
