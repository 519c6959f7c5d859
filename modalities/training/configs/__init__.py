"""The config classes of training/, one component to a module (see modalities/training/config.py)."""
