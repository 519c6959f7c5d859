import os

# Tiny models on a 2-core machine run fastest single-threaded, and pytest-xdist already runs two workers;
# set before torch is imported anywhere (subprocesses such as torchrun workers inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
