"""torchrun with image records: 2 CPU processes (gloo) train like 1 process with gradient accumulation.

Same argument as test_ddp.py (the aux losses are per micro-batch), on prompt/response records
with the toy `.npy` image encoder: rank r's micro-batch is micro-batch r of the single process.
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

from salesai import ModelConfig, SalesAIModel
from salesai.data.records import RecordDataset
from salesai.testing import ByteTokenizer, ToyEncoders, npy_bytes, register_plugin
from salesai.train.trainer import TrainConfig, Trainer

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_records_ddp import run_case
torch.set_num_threads(1)
out = run_case({root!r}, {data!r}, batch_size=2, grad_accum=1)
import torch.distributed as dist
if dist.get_rank() == 0:
    with open({result!r}, "w") as fh:
        json.dump(out, fh)
"""


def write_data(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        (d / f"{i}.npy").write_bytes(npy_bytes(np.random.default_rng(i).normal(size=(3, 16, 16))))
    words = ["red", "green", "blue", "gold"]
    recs = [{"prompt": "<image> colour?", "response": words[i % 4], "image": f"{i % 4}.npy"}
            for i in range(12)]
    recs += [{"text": f"two pictures {i}", "image": [f"{i % 4}.npy", f"{(i + 2) % 4}.npy"]} for i in range(4)]
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def run_case(out_dir: str, data: str, batch_size: int, grad_accum: int) -> dict[str, Any]:
    with register_plugin(ToyEncoders):
        torch.manual_seed(0)
        tok = ByteTokenizer()
        model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tok), encoders={
            "image": {"type": "toy-patches", "size": 16, "patch": 8}}))
        ds = RecordDataset.from_files([data], tok, 48, model)
        cfg = TrainConfig(max_steps=4, batch_size=batch_size, grad_accum=grad_accum, seq_len=48,
                          warmup_steps=1, lr=3e-3, min_lr=3e-4, eval_every=0, eval_steps=2, save_every=0,
                          log_every=1,
                          precision="fp32", out_dir=out_dir, seed=3)
        trainer = Trainer(model, cfg, ds, ds, progress=False, log=lambda _m: None)
        result = trainer.fit()
    return {"losses": result.losses, "val_loss": result.evals[-1]["val_loss"],
            "world_size": trainer.info.world_size}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ddp-records")
    data = write_data(root / "data")
    result = root / "result.json"
    script = root / "script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), root=str(root / "run"), data=str(data),
                                    result=str(result)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.read_text())
    out["data"] = str(data)
    return out


def test_two_processes_equal_one_with_accumulation(two_processes: dict[str, Any], tmp_path: Path) -> None:
    assert two_processes["world_size"] == 2
    single = run_case(str(tmp_path / "single"), two_processes["data"], batch_size=2, grad_accum=2)
    assert single["world_size"] == 1
    np.testing.assert_allclose(two_processes["losses"], single["losses"], rtol=0, atol=1e-5)
    assert two_processes["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)
