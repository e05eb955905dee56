"""SalesAIModel: a decoder-only Mixture-of-Experts transformer (Mixtral/Llama layout).

What: token embedding -> `num_layers` pre-norm blocks (RMSNorm -> GQA attention with RoPE ->
residual; RMSNorm -> MoE of registry experts, or one expert when `num_experts == 1` ->
residual) -> RMSNorm -> linear head (optionally tied to the embedding). Parameter names
follow transformers' Mixtral/Llama (`embed_tokens`, `layers.i.self_attn.q_proj`,
`layers.i.mlp.gate`, `layers.i.mlp.experts.j.w1`, `norm`, `lm_head`), so `salesai.export.hf`
maps weights 1:1 and the logits agree to float32 round-off (tests/test_hf_parity.py).

Entry points:
- `forward(input_ids=None, attention_mask=None, labels=None, position_ids=None,
  inputs_embeds=None, past_key_values=None, use_cache=False, logits_to_keep=0) -> ModelOutput`
  (`out.logits`, `out.loss`, `out.aux_loss`, `out.past_key_values`; also `out["logits"]`).
  `attention_mask` is (B, P+T) with 1 = token, 0 = padding (left padding supported); position
  ids default to `cumsum(mask) - 1`. `labels` (B, T) are shifted inside, -100 and padding are
  ignored; loss = cross-entropy + aux_loss, aux_loss = aux_loss_coef * load balance +
  z_loss_coef * z-loss (layer means), computed when a coefficient > 0 and the model is
  training or labels are given. `past_key_values` is either a `StaticKVCache` (written in
  place, returned as is) or a list of (k, v) tensors per layer (concatenated, the new list
  returned); `use_cache=True` without a past returns such a list.
- `embed(input_ids) -> (B, T, D)`: token embeddings, so multimodal code can splice encoder
  outputs into `inputs_embeds`.
- Multimodal (`config.encoders`): `self.encoders` / `self.projectors` (ModuleDicts keyed by
  modality, built through the encoder registry, `salesai.model.multimodal`); `forward(...,
  media={"image": [...]})` and `generate(ids, images=[...])` replace each placeholder token
  by its item's projected embeddings (LLaVA splice; labels there are ignored).
- `step(input_ids, cache, position_ids=None, key_valid=None) -> (B, V)`: the generation fast
  path (StaticKVCache, logits of the last position only, no loss, no aux).
- Explicit-KV decoder for exporters (ONNX), traceable by `torch.onnx.export` (dynamo or the
  TorchScript tracer) and `torch.export`, with dynamic batch, sequence and past length
  (past length 0 allowed):

      decoder_forward(inputs_embeds,   # (B, T, D) float
                      attention_mask,  # (B, P+T) int64/bool, 1 = token, 0 = padding
                      position_ids,    # (B, T) int64
                      past_keys,       # list of num_layers tensors (B, num_kv_heads, P, head_dim)
                      past_values,     # same shapes as past_keys
                      last_logits_only=False,  # Python bool, fixed at trace time
                      logits_to_keep=None)     # int64 tensor k: last k positions (0 = all)
        -> (logits,          # (B, T, V) float32, (B, 1, V) / (B, k, V) with the options above
            present_keys,    # list of num_layers tensors (B, num_kv_heads, P+T, head_dim)
            present_values)  # same shapes

  It always uses the static expert loop (every expert, `nonzero` selection, `index_add_`),
  an explicit boolean causal+padding mask built from `attention_mask`, and GQA by repeating
  key/value heads: no `.tolist()`, no Python branch on tensor values. Under dynamo the mask
  length P+T needs its own dynamic dim (`Dim.AUTO`). Feed `embed(input_ids)` (or spliced
  multimodal embeddings) as `inputs_embeds`; for the first step pass past tensors with P=0.

References: transformers `modeling_mixtral.py` / `modeling_llama.py`, nanoGPT `model.py`,
nanochat `gpt.py`. What it is not: no dropout, no sliding window, no tensor/expert parallelism.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salesai.errors import SalesAIError
from salesai.model import weights as W
from salesai.model.attention import Attention, causal_mask
from salesai.model.cache import StaticKVCache
from salesai.model.config import ModelConfig
from salesai.model.moe import MoE
from salesai.model.rope import RMSNorm, is_exporting, rope_table, signed_sin

PastKV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ModelOutput:
    """What `SalesAIModel.forward` returns; attributes or `out["logits"]`."""

    logits: torch.Tensor  # (B, T, V), or (B, logits_to_keep, V)
    loss: torch.Tensor | None = None  # cross-entropy + aux_loss, when labels are given
    aux_loss: torch.Tensor | None = None  # weighted load-balance + z-loss, when computed
    past_key_values: StaticKVCache | PastKV | None = None  # the cache, when one is in use

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]


def _kept_positions(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Indices of the last `keep` positions of x (B, T, D), all of them when keep <= 0 or > T.

    Tensor ops only (arange over T, compare, nonzero), so a traced graph keeps both T and keep dynamic.
    """
    pos = torch.arange(x.shape[1], device=x.device)  # (T,)
    k = keep.reshape(-1)[:1].to(pos.dtype)  # (1,)
    end = pos[-1:] + 1  # (1,) = T as a tensor
    start = torch.where(k > 0, end - k, torch.zeros_like(k))  # (1,), may be < 0 (then all)
    return torch.nonzero(pos >= start).reshape(-1)  # (k,)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then + ffn(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer_idx: int, expert_factory: Any) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_dim, cfg.norm_eps)
        self.self_attn = Attention(cfg.hidden_dim, cfg.num_heads, cfg.num_kv_heads, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_dim, cfg.norm_eps)
        self.is_moe = cfg.is_moe
        self.mlp: nn.Module
        if cfg.is_moe:
            self.mlp = MoE(cfg.hidden_dim, cfg.intermediate_dim, cfg.num_experts, cfg.top_k,
                           expert_factory, cfg.shared_dim)
        else:
            self.mlp = expert_factory(cfg.hidden_dim, cfg.intermediate_dim)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: StaticKVCache | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        token_mask: torch.Tensor | None = None,
        compute_aux: bool = False,
        static: bool = False,
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None, torch.Tensor | None]:
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, is_causal, cache, past, static)
        x = x + h
        h = self.post_attention_layernorm(x)
        lb = z = None
        if self.is_moe:
            h, lb, z = self.mlp(h, token_mask, compute_aux, static)
        else:
            h = self.mlp(h.reshape(-1, h.shape[-1])).view(h.shape)  # experts take (N, D)
        return x + h, present, lb, z


class SalesAIModel(nn.Module):
    """Decoder-only MoE language model; see the module docstring for the entry points."""

    rope_cos: torch.Tensor  # (max_seq_len, head_dim) buffer, not saved
    rope_sin: torch.Tensor  # signed_sin(sin): first half negated, for apply_rope_rolled

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        from salesai.plugins import registry

        self.config = config
        factory = registry("experts").get(config.expert_type)  # unknown name: error listing known ones
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_dim)
        self.layers = nn.ModuleList(Block(config, i, factory) for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_dim, config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_dim, config.vocab_size, bias=False)
        if config.encoders:  # modality encoders (plugins) + projectors; absent for a text model
            from salesai.model.multimodal import build_encoders

            self.encoders, self.projectors = build_encoders(config)
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.init_rope()
        self.reset_parameters()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    # -- construction ----------------------------------------------------------------------
    def init_rope(self) -> None:
        """(Re)compute the RoPE tables (e.g. after building on the meta device)."""
        cfg = self.config
        cos, sin = rope_table(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)  # (max_seq_len, head_dim)
        device = self.embed_tokens.weight.device if self.embed_tokens.weight.device.type != "meta" else None
        self.rope_cos = cos.to(device)
        self.rope_sin = signed_sin(sin).to(device)

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights; residual output projections scaled by 1/sqrt(2 * layers)."""
        std = self.config.init_std
        out_std = std / (2 * self.config.num_layers) ** 0.5
        for name, module in self.named_modules():
            if name.startswith("encoders."):
                continue  # an encoder initialises itself
            if isinstance(module, (nn.Linear, nn.Embedding)):
                last = name.rsplit(".", 1)[-1]
                nn.init.normal_(module.weight, mean=0.0, std=out_std if last in ("o_proj", "w2") else std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T) -> (B, T, D), for building `inputs_embeds`."""
        return self.embed_tokens(input_ids)

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: StaticKVCache | PastKV | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        media: Any = None,
    ) -> ModelOutput:
        if media:  # multimodal: encode, splice into the token embeddings (sequence grows)
            if input_ids is None or past_key_values is not None or position_ids is not None:
                raise SalesAIError("forward: media needs input_ids, and no past_key_values or position_ids")
            from salesai.model.multimodal import splice_media

            sp = splice_media(self, input_ids, media, attention_mask, labels)
            input_ids, inputs_embeds = None, sp.inputs_embeds
            attention_mask, labels = sp.attention_mask, sp.labels
        if (input_ids is None) == (inputs_embeds is None):
            raise SalesAIError("forward: pass exactly one of input_ids or inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        b, t = x.shape[0], x.shape[1]
        static = is_exporting()
        cache = past_key_values if isinstance(past_key_values, StaticKVCache) else None
        past = None
        if past_key_values is not None and not isinstance(past_key_values, StaticKVCache):
            past = list(past_key_values)
        p = cache.length if cache is not None else (past[0][0].shape[2] if past else 0)
        s = p + t
        if not static:
            if s > self.config.max_seq_len:
                raise SalesAIError(f"sequence of {s} tokens exceeds max_seq_len={self.config.max_seq_len}")
            if past is not None and len(past) != len(self.layers):
                raise SalesAIError(f"past_key_values: expected {len(self.layers)} layers, got {len(past)}")
        key_valid = None
        if attention_mask is not None:
            if not static and tuple(attention_mask.shape) != (b, s):
                raise SalesAIError(
                    f"attention_mask: expected shape ({b}, {s}) = (batch, past + new tokens), "
                    f"got {tuple(attention_mask.shape)}"
                )
            key_valid = attention_mask.bool()  # (B, S)
            if not static and bool(key_valid.all()):
                key_valid = None  # no padding: cheaper causal path
        if position_ids is None and key_valid is not None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, p:]  # type: ignore[union-attr]
        cos, sin = self._rope(position_ids, p, s)
        mask, is_causal = self._mask(key_valid, t, s, p)
        token_mask = key_valid[:, p:].reshape(-1) if key_valid is not None else None  # (B*T,)
        cfg = self.config
        compute_aux = cfg.is_moe and (self.training or labels is not None) and (
            cfg.aux_loss_coef > 0 or cfg.z_loss_coef > 0
        )
        presents: PastKV = []
        lbs: list[torch.Tensor] = []
        zs: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, present, lb, z = layer(x, cos, sin, mask, is_causal, cache, past[i] if past else None,
                                      token_mask, compute_aux, static)
            if present is not None:
                presents.append(present)
            if lb is not None and z is not None:
                lbs.append(lb)
                zs.append(z)
        if cache is not None:
            cache.advance(t)
        if logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        logits = self.lm_head(self.norm(x))  # (B, T, V)

        aux_loss = None
        if lbs:
            aux_loss = cfg.aux_loss_coef * torch.stack(lbs).mean() + cfg.z_loss_coef * torch.stack(zs).mean()
        loss = None
        if labels is not None:
            if logits_to_keep > 0:
                raise SalesAIError("forward: labels need the logits of every position (logits_to_keep=0)")
            loss = self._lm_loss(logits, labels, attention_mask, p)
            if aux_loss is not None:
                loss = loss + aux_loss
        new_past: StaticKVCache | PastKV | None = None
        if cache is not None:
            new_past = cache
        elif use_cache or past is not None:
            new_past = presents
        return ModelOutput(logits=logits, loss=loss, aux_loss=aux_loss, past_key_values=new_past)

    def _rope(self, position_ids: torch.Tensor | None, p: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin broadcastable to (B, H, T, hd): (T, hd) for contiguous positions, else (B, 1, T, hd)."""
        if position_ids is None:
            return self.rope_cos[p:s], self.rope_sin[p:s]  # (T, hd)
        return self.rope_cos[position_ids].unsqueeze(1), self.rope_sin[position_ids].unsqueeze(1)

    @staticmethod
    def _mask(key_valid: torch.Tensor | None, t: int, s: int, p: int) -> tuple[torch.Tensor | None, bool]:
        """(mask, is_causal) for SDPA: none at all where causality alone is implied."""
        if key_valid is None:
            if p == 0:
                return None, t > 1  # plain causal
            if t == 1:
                return None, False  # one new token sees every past one
            return causal_mask(None, t, s), False
        if t == 1:
            return key_valid[:, None, None, :], False  # (B, 1, 1, S)
        return causal_mask(key_valid, t, s), False

    @staticmethod
    def _lm_loss(
        logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None, p: int
    ) -> torch.Tensor:
        """Next-token cross-entropy: position i predicts labels[i + 1]; -100 and padding ignored."""
        if labels.shape != logits.shape[:2]:
            raise SalesAIError(
                f"labels: expected shape {tuple(logits.shape[:2])} (as input_ids), got {tuple(labels.shape)}"
            )
        # Shift the labels, not the logits: slicing the logits would copy all of them (B*T*V).
        target = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T), last position predicts nothing
        if attention_mask is not None:
            target[:, :-1].masked_fill_(attention_mask[:, p + 1:] == 0, -100)  # padding labels
        flat = logits.reshape(-1, logits.shape[-1])  # (B*T, V), a view
        if flat.dtype != torch.float32:
            flat = flat.float()
        total = F.cross_entropy(flat, target.reshape(-1), ignore_index=-100, reduction="sum")
        count = (target != -100).sum().clamp_min(1)
        return total / count

    # -- generation fast path --------------------------------------------------------------
    def step(
        self,
        input_ids: torch.Tensor | None,
        cache: StaticKVCache,
        position_ids: torch.Tensor | None = None,
        key_valid: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run (B, T) new tokens through the cache; return the last position's logits (B, V).

        position_ids (B, T) default to cache.length + arange(T); key_valid (B, cache.length + T)
        bool marks real tokens (None = no padding). `inputs_embeds` (B, T, D) replaces the token
        embeddings (a spliced multimodal prefill; input_ids may then be None).
        """
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        t = x.shape[1]
        p = cache.length
        s = p + t
        if s > self.config.max_seq_len:
            raise SalesAIError(f"sequence of {s} tokens exceeds max_seq_len={self.config.max_seq_len}")
        cos, sin = self._rope(position_ids, p, s)
        mask, is_causal = self._mask(key_valid, t, s, p)
        token_mask = key_valid[:, p:].reshape(-1) if key_valid is not None and t > 1 else None
        for layer in self.layers:
            x = layer(x, cos, sin, mask, is_causal, cache, None, token_mask)[0]
        cache.advance(t)
        return self.lm_head(self.norm(x[:, -1]))  # (B, V)

    # -- explicit-KV decoder (export) ------------------------------------------------------
    def decoder_forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_keys: list[torch.Tensor],
        past_values: list[torch.Tensor],
        last_logits_only: bool = False,
        logits_to_keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Export-safe decoder over explicit past tensors; see the module docstring.

        `logits_to_keep`: an int64 tensor (a graph input) holding k: logits of the last k
        positions only (0 = all), computed with tensor ops so the exported graph keeps it dynamic.
        """
        x = inputs_embeds  # (B, T, D)
        t = x.shape[1]
        s = attention_mask.shape[1]
        cos = self.rope_cos[position_ids].unsqueeze(1)  # (B, 1, T, hd)
        sin = self.rope_sin[position_ids].unsqueeze(1)
        mask = causal_mask(attention_mask.bool(), t, s)  # (B, 1, T, S)
        keys: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, present, _, _ = layer(x, cos, sin, mask, False, None, (past_keys[i], past_values[i]),
                                     None, False, True)
            keys.append(present[0])
            values.append(present[1])
        if last_logits_only:
            x = x[:, -1:]
        elif logits_to_keep is not None:
            x = x.index_select(1, _kept_positions(x, logits_to_keep))  # (B, k, D)
        logits = self.lm_head(self.norm(x)).float()  # (B, T, V) or (B, k, V)
        return logits, keys, values

    # -- expert usage ----------------------------------------------------------------------
    def moe_layers(self) -> list[tuple[int, MoE]]:
        return [(i, layer.mlp) for i, layer in enumerate(self.layers) if isinstance(layer.mlp, MoE)]

    def expert_usage(self) -> list[dict[str, Any]]:
        """Per MoE layer: {layer, assignments, share[E], balance (normalised entropy, 1.0 = uniform),
        min_max_ratio, utilisation (share of experts that got tokens)} since the last reset."""
        return [{"layer": i, **moe.usage()} for i, moe in self.moe_layers()]

    def reset_expert_usage(self) -> None:
        for _, moe in self.moe_layers():
            moe.reset_usage()

    # -- sizes -----------------------------------------------------------------------------
    def num_parameters(self, active: bool = False) -> int:
        """Unique parameters; `active=True` counts only the top_k routed experts per MoE layer."""
        total = sum(p.numel() for p in self.parameters())
        if not active:
            return total
        for _, moe in self.moe_layers():
            per_expert = sum(p.numel() for p in moe.experts[0].parameters())
            total -= (moe.num_experts - moe.top_k) * per_expert
        return total

    # -- generation and checkpoints (thin wrappers) ----------------------------------------
    def splice_media(self, input_ids: torch.Tensor, media: Any, attention_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None, padding_side: str = "auto") -> Any:
        """Encode `media` ({modality: items}) and splice it into `input_ids`; see salesai.model.multimodal."""
        from salesai.model.multimodal import splice_media

        return splice_media(self, input_ids, media, attention_mask, labels, padding_side)

    def generate(self, input_ids: Any, **kwargs: Any) -> Any:
        """See `salesai.model.generation.generate` (multimodal: `images=`, `audio=` or `media=`)."""
        from salesai.model.generation import generate

        return generate(self, input_ids, **kwargs)

    def stream(self, input_ids: Any, **kwargs: Any) -> Iterator[Any]:
        """See `salesai.model.generation.stream`."""
        from salesai.model.generation import stream

        return stream(self, input_ids, **kwargs)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json + model.safetensors into `path` (each file replaced atomically)."""
        return W.save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> SalesAIModel:
        """Load a checkpoint directory (config.json + model.safetensors); nothing is unpickled."""
        d = Path(path)
        cfg = W.read_config(d)
        tensors = W.read_weights(d / W.WEIGHTS_FILE)
        with torch.device("meta"):
            model = cls(cfg)
        model = model.to_empty(device="cpu")
        model.init_rope()
        if cfg.encoders:  # plugin encoders may compute unsaved buffers at init: build them for real
            from salesai.model.multimodal import build_encoders

            with torch.random.fork_rng(devices=[]):
                model.encoders, model.projectors = build_encoders(cfg)
        W.load_state(model, tensors, d / W.WEIGHTS_FILE)
        model.eval()
        return model.to(device) if device is not None else model


__all__ = ["Block", "ModelOutput", "SalesAIModel"]
