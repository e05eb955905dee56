"""salesai-serve: an OpenAI-compatible HTTP inference server, `salesai serve`.

A plugin distribution of the salesai toolkit, discovered through the `salesai` entry point
group (`salesai_serve.plugin`). It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
