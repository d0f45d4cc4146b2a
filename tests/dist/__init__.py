"""Programs the multi-process tests launch with ``torchrun`` / ``accelerate launch`` (tests/test_distributed.py)."""
