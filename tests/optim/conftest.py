import pytest

from .tiny_model import TinyLM, tiny_batch


@pytest.fixture
def tiny_model() -> TinyLM:
    return TinyLM()


@pytest.fixture
def tiny_model_with_grads() -> TinyLM:
    import torch.nn.functional as F

    model = TinyLM()
    inputs, targets = tiny_batch()
    logits = model({"input_ids": inputs})["logits"]
    F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).backward()
    return model
