"""The configs of model/gpt2's parallelized variants; see ../config.py."""
