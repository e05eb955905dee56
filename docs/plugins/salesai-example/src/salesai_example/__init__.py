"""salesai-example: the example plugin from the salesai plugin docs.

It registers one expert type (`relu2`), one exporter (`summary`) and one command
(`salesai hello`). The hook implementations live in `salesai_example.plugin`; the torch
code lives in modules that are imported only when a component is built.
"""

__version__ = "0.1.0"
