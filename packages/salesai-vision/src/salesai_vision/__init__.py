"""salesai-vision: ViT patch encoder and image preprocessing.

A plugin distribution of the salesai toolkit, discovered through the `salesai` entry point
group (`salesai_vision.plugin`). It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
