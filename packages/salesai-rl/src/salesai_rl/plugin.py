"""Registers nothing yet: the RL agents (DQN family, GRPO, DPO) and `salesai rl` arrive with a later issue.

This is the module the `salesai` entry point of salesai-rl names. Until the components
exist it implements no hook, so `salesai plugins` lists the distribution, its version
and this line, with nothing registered: no stub pretends to work.
"""
