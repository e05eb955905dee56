"""TRL as the referee: our GRPO and DPO losses equal TRL's own `_compute_loss` on the same inputs.

TRL's trainer methods are called unbound, on a stand-in `self` that carries only the
attributes the method reads, so no TRL trainer (datasets, accelerate state) is built:
- GRPO: `GRPOTrainer._compute_loss` with the per-token log-probs handed in (the same tensors
  ours takes), for loss types bnpo (our "token"), grpo ("sequence") and dr_grpo, with and
  without the k3 KL term, ratios away from 1 (old log-probs differ) so clipping is exercised;
  value and gradient agree.
- DPO: our tiny model exported with the `hf` exporter and loaded by transformers is the
  model TRL scores (through its fused LM head), on TRL's right-padded [chosen; rejected]
  layout; our DPO loss on our model, with our left-padded batches, equals TRL's to 1e-5, also
  with the chosen-NLL term (TRL loss_types ["sigmoid", "sft"], our `sft_weight`).
Skipped unless trl (the `test` extra of salesai-rl) is installed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from salesai_rl.lm import losses
from salesai_rl.lm.dpo import pair_batch
from salesai_rl.lm.policy import completion_logprobs, encode_prompt

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)


class _Accelerator:
    """What TRL's loss methods call on `self.accelerator` in a single process."""

    device = torch.device("cpu")
    num_processes = 1

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    gather_for_metrics = gather

    def reduce(self, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return x


def _grpo_stub(loss_type: str, beta: float, eps: float, eps_high: float, max_len: int,
               logps: torch.Tensor) -> Any:
    entropies = torch.zeros_like(logps)
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, entropies, None),
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=loss_type, epsilon_low=eps,
        epsilon_high=eps_high, use_vllm=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, accelerator=_Accelerator(),
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        max_completion_length=max_len,
    )


@pytest.mark.parametrize(("ours", "theirs"), [("token", "bnpo"), ("sequence", "grpo"), ("dr_grpo", "dr_grpo"),
                                              ("token", "dapo")])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_loss_matches_trl(ours: str, theirs: str, beta: float) -> None:
    torch.manual_seed(0)
    b, t, eps, eps_high = 6, 7, 0.2, 0.28
    base = torch.randn(b, t) - 2.0
    old = base + 0.3 * torch.randn(b, t)  # ratios well away from 1: both clip sides are hit
    ref = base + 0.2 * torch.randn(b, t)
    mask = torch.ones(b, t)
    for row, n in enumerate([7, 3, 5, 1, 6, 2]):
        mask[row, n:] = 0
    adv = torch.tensor([1.5, -0.7, 0.0, 2.0, -1.2, 0.4])

    mine = base.clone().requires_grad_(True)
    loss, stats = losses.grpo_loss(mine, old, adv, mask, epsilon=eps, epsilon_high=eps_high, beta=beta,
                                   ref_logps=ref, loss_type=ours, max_completion_length=t)
    loss.backward()

    theirs_logps = base.clone().requires_grad_(True)
    stub = _grpo_stub(theirs, beta, eps, eps_high, t, theirs_logps)
    inputs = {
        "prompt_ids": torch.ones(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.ones(b, t, dtype=torch.long), "completion_mask": mask.long(),
        "advantages": adv, "old_per_token_logps": old, "num_items_in_batch": mask.sum(),
    }
    if beta:
        inputs["ref_per_token_logps"] = ref
    trl_loss = trl.GRPOTrainer._compute_loss(stub, None, inputs)
    trl_loss.backward()

    torch.testing.assert_close(loss, trl_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mine.grad, theirs_logps.grad, rtol=1e-6, atol=1e-7)
    metrics = stub._metrics["train"]
    assert stats.clip_region == pytest.approx(metrics["clip_ratio/region_mean"][0], abs=1e-6)
    assert stats.clip_low > 0 and stats.clip_high > 0
    if beta:
        assert stats.kl == pytest.approx(metrics["kl"][0], abs=1e-6)


PAIRS = [
    {"prompt": "12+7=", "chosen": "19", "rejected": "18"},
    {"prompt": "3-1=", "chosen": "2", "rejected": "-4"},
    {"prompt": "def f(x):", "chosen": "\n    return x", "rejected": "\n  pass"},
]


def _trl_dpo_inputs(tokenizer: Any, records: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    """TRL's preference layout: rows [chosen...; rejected...], prompt + completion right-padded."""
    rows, comp = [], []
    for key in ("chosen", "rejected"):
        for r in records:
            p = encode_prompt(tokenizer, r["prompt"])
            c = [*tokenizer.encode(r[key]), tokenizer.eos_id]
            rows.append(p + c)
            comp.append([0] * len(p) + [1] * len(c))
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tokenizer.pad_id] * (width - len(r)) for r in rows])
    attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    cmask = torch.tensor([c + [0] * (width - len(c)) for c in comp])
    return {"input_ids": ids, "attention_mask": attn, "completion_mask": cmask}


@pytest.mark.parametrize(("num_experts", "sft_weight"), [(4, 0.0), (1, 0.0), (4, 0.5)])  # Mixtral, Llama
def test_dpo_loss_matches_trl_on_the_hf_export(tmp_path: Path, num_experts: int, sft_weight: float) -> None:
    from salesai import ModelConfig, SalesAIModel
    from salesai.export.hf import export_hf
    from salesai.testing import ByteTokenizer

    tok = ByteTokenizer()
    torch.manual_seed(0)
    ours = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tok), init_std=0.1,
                                              num_experts=num_experts)).eval()
    hf_dir = export_hf(ours, None, tmp_path / "hf")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    trl.trainer.utils.add_fused_lm_head(theirs, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))

    ref_c = torch.tensor([-9.0, -7.5, -30.0])
    ref_r = torch.tensor([-8.0, -9.5, -26.0])
    beta = 0.1
    with torch.no_grad():
        batch = pair_batch(tok, PAIRS, 512)
        per_token, _, _ = completion_logprobs(ours, batch, with_entropy=False)
        chosen, rejected = (per_token * batch.completion_mask).sum(-1).chunk(2)
        loss, r_c, r_r = losses.dpo_loss(chosen, rejected, ref_c, ref_r, beta)
        loss = loss + sft_weight * losses.chosen_nll(per_token, batch.completion_mask)

    stub = SimpleNamespace(
        model=theirs, accelerator=_Accelerator(), aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid", "sft"],
        loss_weights=[1.0, sft_weight],
        beta=beta, label_smoothing=0.0, use_weighting=False, rpo_alpha=None,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
    )
    inputs = {**_trl_dpo_inputs(tok, PAIRS), "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    with torch.no_grad():
        trl_loss = trl.DPOTrainer._compute_loss(stub, theirs, inputs, return_outputs=False)
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-5)
    metrics = stub._metrics["eval"]
    assert float((r_c - r_r).mean()) == pytest.approx(metrics["rewards/margins"][0], abs=1e-5)
    assert float((r_c > r_r).float().mean()) == pytest.approx(metrics["rewards/accuracies"][0])
    assert float(chosen.mean()) == pytest.approx(metrics["logps/chosen"][0], abs=1e-4)
