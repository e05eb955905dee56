"""Data parallel under torchrun: 2 CPU processes (gloo) train like 1 process with the same global batch.

Why two comparisons: the MoE load-balancing loss is computed from the routing statistics of
each micro-batch (as in Switch/Mixtral), so it is not additive over a batch split. Each rank
computes it on its own micro-batch, exactly as one process does on each micro-batch of a
gradient-accumulation step. Hence:
- with the aux losses on, 2 ranks x batch 2 == 1 process x batch 2 x grad_accum 2 (same
  micro-batches, same aux terms, gradients averaged the same way);
- with the aux losses off, 2 ranks x batch 2 == 1 process x batch 4 (mean cross-entropy over
  equally long sequences is the same however the batch is split).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import salesai
from salesai.train.trainer import TrainConfig, Trainer

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_ddp import run_case
torch.set_num_threads(1)
out = {{}}
for name, batch, accum, aux in (("aux_on", 2, 1, True), ("aux_off", 2, 1, False)):
    out[name] = run_case({root!r} + "/" + name, batch, accum, aux)
import torch.distributed as dist
if dist.get_rank() == 0:
    with open({result!r}, "w") as fh:
        json.dump(out, fh)
"""


def run_case(out_dir: str, batch_size: int, grad_accum: int, aux: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    coefs = {} if aux else {"aux_loss_coef": 0.0, "z_loss_coef": 0.0}
    model = salesai.SalesAIModel(salesai.ModelConfig.from_name("tiny", **coefs))
    data = torch.randint(4, 512, (4000,), generator=torch.Generator().manual_seed(1))
    cfg = TrainConfig(max_steps=5, batch_size=batch_size, grad_accum=grad_accum, seq_len=32, warmup_steps=2,
                      lr=3e-3, min_lr=3e-4, eval_every=0, eval_steps=2, save_every=0, log_every=1,
                      precision="fp32", out_dir=out_dir, seed=3)
    trainer = Trainer(model, cfg, data, data[:800], progress=False, log=lambda _m: None)
    result = trainer.fit()
    return {"losses": result.losses, "val_loss": result.evals[-1]["val_loss"],
            "world_size": trainer.info.world_size, "tokens_per_step": trainer.global_batch_tokens}


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("ddp")
    result = root / "result.json"
    script = root / "ddp_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), result=str(result)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, dict[str, object]] = json.loads(result.read_text())
    data["_root"] = {"path": str(root)}
    return data


def test_two_processes_equal_one_with_accumulation_aux_on(two_process_results: dict, tmp_path: Path) -> None:
    ddp: dict[str, Any] = two_process_results["aux_on"]
    assert ddp["world_size"] == 2 and ddp["tokens_per_step"] == 2 * 2 * 32
    single = run_case(str(tmp_path / "single"), batch_size=2, grad_accum=2, aux=True)
    assert single["world_size"] == 1 and single["tokens_per_step"] == ddp["tokens_per_step"]
    np.testing.assert_allclose(ddp["losses"], single["losses"], rtol=0, atol=1e-5)
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)


def test_two_processes_equal_one_big_batch_aux_off(two_process_results: dict, tmp_path: Path) -> None:
    ddp: dict[str, Any] = two_process_results["aux_off"]
    single = run_case(str(tmp_path / "single"), batch_size=4, grad_accum=1, aux=False)
    np.testing.assert_allclose(ddp["losses"], single["losses"], rtol=0, atol=1e-5)
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)


def test_rank0_alone_writes_metrics_and_checkpoint(two_process_results: dict) -> None:
    run = Path(two_process_results["_root"]["path"]) / "aux_on"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5]  # one writer, no duplicates
    assert (run / "latest").read_text().strip() == "step-000005"
    state = run / "step-000005" / "trainer_state"
    assert (state / "rng-rank0.safetensors").is_file() and (state / "rng-rank1.safetensors").is_file()
    assert json.loads((state / "state.json").read_text())["world_size"] == 2
