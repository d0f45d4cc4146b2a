"""One engine for every model: fit, evaluate, predict, checkpoints."""
