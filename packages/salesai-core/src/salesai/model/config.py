"""ModelConfig: the hyper-parameters of the salesai decoder, with named presets.

What: one dataclass (a comment per field), a plain dict of presets (`tiny`, `base`,
`multimodal`) and the constructors `from_name`, `from_file` (YAML/JSON/TOML), `from_dict`
that validate every value and fail with a `SalesAIError` naming the field and the allowed
range or choices. References: litgpt `litgpt/config.py` (presets by name), nanoGPT
`GPTConfig`. Field names map onto Hugging Face `MixtralConfig`/`LlamaConfig` (see
`salesai.export.hf`).

What it is not: no torch import here (the CLI reads configs without loading torch), and the
expert type is only checked against the plugin registry when a model is built.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

MAX_SEQ_LEN = 2048  # the longest sequence any salesai model supports (RoPE table size)


@dataclass
class ModelConfig:
    """Decoder-only MoE transformer hyper-parameters (defaults = the `base` preset)."""

    vocab_size: int = 32000  # tokenizer vocabulary size (embedding and output rows)
    hidden_dim: int = 512  # model width D (residual stream)
    num_layers: int = 8  # number of transformer blocks
    num_heads: int = 8  # query heads; head_dim = hidden_dim // num_heads (must be even, for RoPE)
    num_kv_heads: int = 4  # key/value heads (grouped-query attention); divides num_heads
    intermediate_dim: int = 1376  # width of each expert's hidden layer (keep a multiple of 16)
    num_experts: int = 4  # routed experts per MoE layer; 1 = a dense model (one feed-forward block)
    top_k: int = 2  # experts each token is routed to (<= num_experts; set to 1 when dense)
    expert_type: str = "swiglu"  # name in registry("experts"), checked when the model is built
    num_shared_experts: int = 0  # DeepSeekMoE-style always-on experts (0 = none)
    shared_intermediate_dim: int = 0  # width of one shared expert; 0 = intermediate_dim
    max_seq_len: int = 2048  # longest sequence (prompt + generated), 1..2048
    rope_theta: float = 10000.0  # RoPE base frequency
    norm_eps: float = 1e-5  # RMSNorm epsilon
    tie_embeddings: bool = False  # share the input embedding with the output projection
    aux_loss_coef: float = 0.01  # Switch load-balancing loss weight (0 = off)
    z_loss_coef: float = 0.001  # router z-loss weight (ST-MoE; 0 = off)
    init_std: float = 0.02  # std of the normal weight initialisation
    pad_token_id: int = 0  # padding id (tokenizer convention: pad=0 unk=1 bos=2 eos=3)
    bos_token_id: int = 2  # beginning-of-sequence id
    eos_token_id: int = 3  # end-of-sequence id, the default stop token of generation
    image_token_id: int | None = None  # placeholder id replaced by image embeddings (multimodal)
    audio_token_id: int | None = None  # placeholder id replaced by audio embeddings (multimodal)
    name: str = "custom"  # preset name or a label, informational only
    # Modality encoders the model carries: {modality: {type: <registry name>, projector:
    # mlp2x_gelu | linear, token_id: <placeholder id>, **encoder options}}, e.g.
    # {"image": {"type": "vit", "image_size": 64}}. Built through registry("encoders").
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] | None = None  # class names of a sequence classifier (None = a language model)

    def __post_init__(self) -> None:
        if self.num_experts == 1:
            self.top_k = 1  # a dense model routes nothing; presets' top_k does not apply
        for modality, default in DEFAULT_PLACEHOLDERS.items():  # the tokenizer's <image>/<audio> ids
            if modality in (self.encoders or {}) and getattr(self, f"{modality}_token_id") is None:
                setattr(self, f"{modality}_token_id", default)
        self.validate()

    # -- derived ---------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    def placeholder_id(self, modality: str) -> int:
        """The token id an encoder's embeddings replace: `<modality>_token_id` or the entry's token_id."""
        entry = self.encoders.get(modality, {})
        value = entry.get("token_id", getattr(self, f"{modality}_token_id", None))
        if value is None:
            raise SalesAIError(f"encoders.{modality}: no placeholder token id (set token_id)")
        return int(value)

    def encoder_options(self, modality: str) -> dict[str, Any]:
        """The options handed to the encoder factory (the entry without type/projector/token_id)."""
        return {k: v for k, v in self.encoders[modality].items() if k not in ENCODER_KEYS}

    @property
    def num_labels(self) -> int:
        """Classes of a sequence classifier (`labels`); 0 for a language model."""
        return len(self.labels) if self.labels else 0

    @property
    def shared_dim(self) -> int:
        """Hidden width of the combined shared-expert block (0 when there is none)."""
        if self.num_shared_experts == 0:
            return 0
        return self.num_shared_experts * (self.shared_intermediate_dim or self.intermediate_dim)

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelConfig:
        """A preset by name (`tiny`, `base`, `multimodal`) with keyword overrides."""
        if name not in PRESETS:
            raise SalesAIError(f"unknown model preset {name!r}; expected one of: {', '.join(PRESETS)}")
        return cls.from_dict({**copy.deepcopy(PRESETS[name]), "name": name, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Build from a plain dict; `preset:` picks a base preset the other keys override."""
        if not isinstance(data, dict):
            raise SalesAIError(f"{source}: expected a mapping of model settings, got {type(data).__name__}")
        data = dict(data)
        preset = data.pop("preset", None)
        base: dict[str, Any] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise SalesAIError(
                    f"{source}: unknown preset {preset!r}; expected one of: {', '.join(PRESETS)}"
                )
            base = {**copy.deepcopy(PRESETS[preset]), "name": preset}
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SalesAIError(
                    f"{source}: unknown model setting {key!r}{hint}; known: {', '.join(sorted(known))}"
                )
        values = {**base, **data}
        for f in dataclasses.fields(cls):
            if f.name in values:
                values[f.name] = _check_type(f.name, values[f.name], _FIELD_TYPES[f.name], source)
        try:
            return cls(**values)
        except SalesAIError as exc:
            raise SalesAIError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a YAML, JSON or TOML file; a top-level `model:` section is used when present
        (with a top-level `preset:` beside it, as in a training run file)."""
        p = Path(path)
        if not p.is_file():
            raise SalesAIError(f"{p}: model config file not found")
        data = _read_mapping(p)
        if isinstance(data, dict) and "model" in data:
            section = data["model"] or {}
            if isinstance(section, dict) and "preset" in data and "preset" not in section:
                section = {"preset": data["preset"], **section}  # a run file: preset: beside model:
            data = section
        return cls.from_dict(data, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> ModelConfig:
        return ModelConfig.from_dict({**self.to_dict(), **changes})

    # -- validation ------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every range; raise SalesAIError naming the field and the allowed values."""
        for name in ("vocab_size", "hidden_dim", "num_layers", "num_heads", "num_kv_heads",
                     "intermediate_dim", "num_experts", "top_k"):
            _at_least(name, getattr(self, name), 1)
        _at_least("num_shared_experts", self.num_shared_experts, 0)
        _at_least("shared_intermediate_dim", self.shared_intermediate_dim, 0)
        if self.hidden_dim % self.num_heads:
            raise SalesAIError(
                f"hidden_dim={self.hidden_dim} must be divisible by num_heads={self.num_heads}"
            )
        if self.head_dim % 2:
            raise SalesAIError(f"head_dim = hidden_dim / num_heads = {self.head_dim} must be even (RoPE)")
        if self.num_heads % self.num_kv_heads:
            raise SalesAIError(
                f"num_kv_heads={self.num_kv_heads} must divide num_heads={self.num_heads}"
            )
        if self.top_k > self.num_experts:
            raise SalesAIError(f"top_k={self.top_k} must be in 1..num_experts ({self.num_experts})")
        if not 1 <= self.max_seq_len <= MAX_SEQ_LEN:
            raise SalesAIError(f"max_seq_len={self.max_seq_len} must be in 1..{MAX_SEQ_LEN}")
        if not self.expert_type or not isinstance(self.expert_type, str):
            raise SalesAIError(f"expert_type={self.expert_type!r} must be a registered expert name")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SalesAIError(f"{name}={value} must be a positive finite number")
        for name in ("aux_loss_coef", "z_loss_coef"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SalesAIError(f"{name}={value} must be >= 0")
        _check_encoders(self)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "image_token_id", "audio_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise SalesAIError(f"{name}={value} must be in 0..{self.vocab_size - 1} (vocab_size - 1)")
        if self.labels is not None:
            labels = self.labels
            if (not isinstance(labels, (list, tuple)) or len(labels) < 2
                    or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels)):
                raise SalesAIError(f"labels={labels!r} must be a list of at least 2 distinct non-empty names")
            self.labels = list(labels)


# Presets: plain data. Expert widths are multiples of 16 (torch's CPU grouped matmul and
# transformers' default MoE path reject widths such as 1365).
PRESETS: dict[str, dict[str, Any]] = {
    # Tests: milliseconds per forward pass, every code path (GQA, MoE top-2) exercised.
    "tiny": dict(vocab_size=512, hidden_dim=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 intermediate_dim=128, num_experts=4, top_k=2, max_seq_len=256),
    # The model card's base: ~90M parameters, ~50M active per token. 4 KV heads (GQA 2:1)
    # halve the KV cache against full multi-head attention at no measurable quality cost.
    "base": dict(vocab_size=32000, hidden_dim=512, num_layers=8, num_heads=8, num_kv_heads=4,
                 intermediate_dim=1376, num_experts=4, top_k=2, max_seq_len=2048),
    # Multimodal: fine-grained experts (32 of width 704, top-4), 8 KV heads of 64.
    "multimodal": dict(vocab_size=32000, hidden_dim=1024, num_layers=16, num_heads=16, num_kv_heads=8,
                       intermediate_dim=704, num_experts=32, top_k=4, max_seq_len=2048),
}

# Multimodal: `tiny` plus a 2-layer ViT on 64x64 images (16 patches of 16 px); tests, benchmarks.
# Trained from scratch, the image path learns at 0.03x the decoder's rate behind a LayerNorm'd
# projector: at the full rate its features collapse to one image-independent vector within the
# first steps (docs/vision.md, "Training from scratch").
PRESETS["tiny-vision"] = dict(
    PRESETS["tiny"],
    encoders={"image": dict(type="vit", image_size=64, patch_size=16, hidden_dim=64, num_layers=2,
                            num_heads=4, projector="mlp2x_gelu", projector_norm=True, lr_scale=0.03)},
)
# `tiny` plus a 2-layer audio encoder (patch 4) on clips of up to 3 s; tests, benchmarks.
PRESETS["tiny-audio"] = dict(
    PRESETS["tiny"],
    encoders={"audio": dict(type="audio", hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128,
                            patch_size=4, max_seconds=3.0, projector="mlp2x_gelu")},
)
# The card's multimodal model reads images through a patch-16 ViT (ViT-S/16 width at 224 px) and
# audio through the patch-4 conv + transformer encoder (750 tokens for a 30 s clip).
PRESETS["multimodal"]["encoders"] = {
    "image": dict(type="vit", image_size=224, patch_size=16, hidden_dim=384, num_layers=12, num_heads=6,
                  projector="mlp2x_gelu"),
    "audio": dict(type="audio", hidden_dim=384, num_layers=4, num_heads=6, intermediate_dim=1536,
                  patch_size=4, max_seconds=30.0, projector="mlp2x_gelu"),
}

PROJECTORS = ("mlp2x_gelu", "linear")  # LLaVA-1.5's two-layer GELU MLP, or one linear layer
# Entry keys that are not encoder options: `projector_norm` (a LayerNorm on the projector output) and
# `lr_scale` (the Trainer's learning-rate factor for this encoder and its projector; docs/vision.md).
ENCODER_KEYS = ("type", "projector", "projector_norm", "token_id", "lr_scale")
DEFAULT_PLACEHOLDERS = {"image": 4, "audio": 5}  # salesai tokenizers' <image> / <audio> ids


def _check_encoders(cfg: ModelConfig) -> None:
    """Shape of `encoders` (the names are checked against the registry when the model is built)."""
    if not isinstance(cfg.encoders, dict):
        raise SalesAIError(f"encoders={cfg.encoders!r} must be a mapping of modality -> encoder settings")
    for modality, entry in cfg.encoders.items():
        where = f"encoders.{modality}"
        if not isinstance(modality, str) or not modality.isidentifier():
            raise SalesAIError(f"{where}: the modality must be a word such as image or audio")
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not entry["type"]:
            raise SalesAIError(f"{where}: expected a mapping with type: <encoder name>, e.g. type: vit")
        projector = entry.get("projector", "mlp2x_gelu")
        if projector not in PROJECTORS:
            raise SalesAIError(f"{where}.projector={projector!r}: expected one of {', '.join(PROJECTORS)}")
        if not isinstance(entry.get("projector_norm", False), bool):
            raise SalesAIError(f"{where}.projector_norm={entry['projector_norm']!r}: expected true or false")
        scale = entry.get("lr_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 10:
            raise SalesAIError(f"{where}.lr_scale={scale!r}: expected a number in [0, 10]")
        cfg.placeholder_id(modality)  # a placeholder id is known


_FIELD_TYPES: dict[str, str] = {
    f.name: str(f.type) for f in dataclasses.fields(ModelConfig)
}


def _check_type(name: str, value: Any, typ: str, source: str) -> Any:
    """Coerce/verify one value against the field's annotation (as a string)."""
    optional = "None" in typ
    if value is None:
        if optional:
            return None
        raise SalesAIError(f"{source}: {name} must not be empty (expected {typ})")
    base = typ.replace(" | None", "")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SalesAIError(f"{source}: {name}={value!r} must be an integer")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value)  # YAML reads 1e-5 as a string
            except (TypeError, ValueError):
                raise SalesAIError(f"{source}: {name}={value!r} must be a number") from None
        return float(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise SalesAIError(f"{source}: {name}={value!r} must be true or false")
        return value
    if base == "str":
        if not isinstance(value, str):
            raise SalesAIError(f"{source}: {name}={value!r} must be a string")
        return value
    return value


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise SalesAIError(f"{name}={value} must be >= {low}")


def _read_mapping(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
    except Exception as exc:
        raise SalesAIError(f"{path}: could not parse {suffix[1:].upper()}: {exc}".splitlines()[0]) from None
    raise SalesAIError(f"{path}: unsupported config format {suffix!r}; expected .yaml, .yml, .json or .toml")


__all__ = ["MAX_SEQ_LEN", "PRESETS", "PROJECTORS", "ModelConfig"]
