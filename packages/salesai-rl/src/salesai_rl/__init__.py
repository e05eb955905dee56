"""salesai-rl: reinforcement learning — the DQN family, episodic novelty, meta-learning, GRPO and DPO.

A plugin distribution of the salesai toolkit, discovered through the `salesai` entry point
group (`salesai_rl.plugin`). It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
