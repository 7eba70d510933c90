"""lvtime: forecast predator-prey series with a LoRA-tuned small LM under a FLOP budget.

Importing this package is cheap on purpose: no torch, no transformers.
"""

__version__ = "0.1.0"
