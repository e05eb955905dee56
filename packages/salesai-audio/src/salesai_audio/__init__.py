"""salesai-audio: log-mel features, a conv/transformer audio encoder and WAV I/O.

A plugin distribution of the salesai toolkit, discovered through the `salesai` entry point
group (`salesai_audio.plugin`). It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
