"""Reports: plots (PNG) and tables for evaluation and training runs."""
