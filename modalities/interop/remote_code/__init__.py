"""Modelling code written beside an exported ``model/gpt2`` whose shape no transformers architecture holds, loaded
with ``trust_remote_code=True`` (``modalities convert to-hf --remote-code``). The two modules import only torch
and transformers, so the folder works without modalities installed."""
