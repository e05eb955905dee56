"""LoRA under torchrun: 2 CPU processes (gloo) train the same adapters as 1 process with accumulation,
and rank 0 alone writes the adapter checkpoint (aux losses on: see test_ddp.py for why accumulation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import salesai
from salesai.lora import LoraConfig, load_base_for_lora
from salesai.model import save_checkpoint
from salesai.train.trainer import TrainConfig, Trainer

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_lora_ddp import run_case
torch.set_num_threads(1)
out = run_case({base!r}, {root!r} + "/ddp", 1)
import torch.distributed as dist
if dist.get_rank() == 0:
    with open({result!r}, "w") as fh:
        json.dump(out, fh)
"""


def run_case(base: str, out_dir: str, grad_accum: int) -> dict[str, Any]:
    torch.manual_seed(5)
    model = load_base_for_lora(base, LoraConfig.parse("r=4,alpha=8,targets=attn,experts,router"))
    data = torch.randint(4, 512, (4000,), generator=torch.Generator().manual_seed(1))
    cfg = TrainConfig(max_steps=4, batch_size=2, grad_accum=grad_accum, seq_len=32, warmup_steps=1, lr=5e-3,
                      min_lr=5e-4, eval_every=0, eval_steps=2, save_every=0, log_every=1, precision="fp32",
                      out_dir=out_dir, seed=3)
    trainer = Trainer(model, cfg, data, data[:800], progress=False, log=lambda _m: None)
    result = trainer.fit()
    return {"losses": result.losses, "world_size": trainer.info.world_size,
            "checkpoint": str(result.checkpoint)}


def test_two_processes_train_the_same_adapters_as_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = salesai.SalesAIModel(salesai.ModelConfig.from_name("tiny"))
    base = str(save_checkpoint(tmp_path / "base", model))
    result = tmp_path / "result.json"
    script = tmp_path / "lora_ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), base=base, root=str(tmp_path),
                                    result=str(result)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(result.read_text())
    assert ddp["world_size"] == 2
    single = run_case(base, str(tmp_path / "single"), grad_accum=2)
    np.testing.assert_allclose(ddp["losses"], single["losses"], rtol=0, atol=1e-5)
    a, _ = salesai.model.load_checkpoint(ddp["checkpoint"])
    b, _ = salesai.model.load_checkpoint(single["checkpoint"])
    ids = torch.randint(3, 512, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(a(ids).logits, b(ids).logits, rtol=0, atol=1e-5)
