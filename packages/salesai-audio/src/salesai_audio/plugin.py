"""Registers nothing yet: the log-mel audio encoder and WAV I/O (encoder `audio`) arrive with a later issue.

This is the module the `salesai` entry point of salesai-audio names. Until the components
exist it implements no hook, so `salesai plugins` lists the distribution, its version
and this line, with nothing registered: no stub pretends to work.
"""
