"""vidrec: video understanding on PyTorch.

Action recognition (train / evaluate / predict), video embeddings and text search,
from one package and one command, ``vidrec``.
"""

__version__ = "0.1.0"
