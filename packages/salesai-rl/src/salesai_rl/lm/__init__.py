"""Language-model RL for salesai checkpoints: GRPO (and REINFORCE), DPO, rewards, a toy task.

Modules: `losses` (the maths, pure tensor functions), `policy` (load, sample, score tokens),
`rewards` (registry lookup and weighted combination), `data` (prompt and preference files),
`grpo`, `dpo` (the trainers), `runs` (checkpoints, metrics, resume), `evaluate` (greedy
evaluation), `task` (the arithmetic task). The commands are in `salesai_rl.lm_cli`.
Importing this package imports nothing heavy; the submodules import torch.
"""
