"""Training: the Trainer, its config, its checkpoint state, the file-to-Trainer glue and torchrun plumbing.

    config.py       TrainConfig (optimizer, schedule, batch, precision), RunConfig (model + training + data)
    trainer.py      Trainer.fit(): the loop, evaluation, schedule, precision, progress
    state.py        trainer checkpoints: step-XXXXXX/ directories, `latest`, exact-resume state
    run.py          `salesai train` / `salesai eval`: files on disk -> tokenizer, data, model -> Trainer
    distributed.py  torchrun process groups (gloo on CPU, nccl on GPU)

Names are imported lazily (`import salesai.train` does not import torch).
"""

from __future__ import annotations

from salesai.lazy import lazy_getattr

_LAZY: dict[str, str] = {
    "Trainer": "salesai.train.trainer",
    "TrainResult": "salesai.train.trainer",
    "TrainConfig": "salesai.train.config",
    "RunConfig": "salesai.train.config",
    "load_run_config": "salesai.train.config",
    "evaluate": "salesai.train.trainer",
    "lr_at": "salesai.train.trainer",
    "train_from_files": "salesai.train.run",
    "evaluate_checkpoint": "salesai.train.run",
    # checkpoint directories, for plugins that keep their own runs (salesai-rl's GRPO/DPO)
    "STATE_DIR": "salesai.train.state",
    "begin_checkpoint": "salesai.train.state",
    "commit_checkpoint": "salesai.train.state",
    "latest_checkpoint": "salesai.train.state",
    "read_state_json": "salesai.train.state",
    "save_optimizer": "salesai.train.state",
    "load_optimizer": "salesai.train.state",
    "step_dir_name": "salesai.train.state",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
