"""How close two float32 results must be, from the arithmetic rather than from one machine's luck.

float32 keeps 24 bits (eps = 2**-23, about 1.2e-7). A dot product of n terms summed in another order (another
CPU's vector width, another BLAS blocking, another thread count) moves by up to about n * eps * sum(|terms|) in
the worst case and about sqrt(n) * eps * sum(|terms|) typically. A logit of a small transformer passes through a
few layers of reductions over a few hundred terms each, so results computed in another order agree to about
1e-5 of the *magnitude of the values involved*, not of each element: an element near zero has the same absolute
error as its large neighbours. Hence the tolerances here scale with the largest |value| of what is compared.

Weights copied or loaded are compared bit-exactly elsewhere (rtol=0, atol=0): no arithmetic happens there.
"""

from __future__ import annotations

import pytest
import torch

FLOAT32_RELATIVE = 1e-5
"""Agreement of float32 activations, logits and losses computed in another summation order (see above)."""


def approx_float32(expected, rel: float = FLOAT32_RELATIVE, of: torch.Tensor | None = None):
    """pytest.approx for a float or a list of floats from float32 arithmetic: rel of the largest |value|, taken
    over `of` when the values compared are a few elements of a larger result (its first logits, say)."""
    values = expected if isinstance(expected, (list, tuple)) else [expected]
    scale = of.detach().abs().max().item() if of is not None else max((abs(v) for v in values), default=0.0)
    return pytest.approx(expected, rel=rel, abs=rel * scale)


def approx_float32_sum(expected_sum: float, terms: torch.Tensor, rel: float = FLOAT32_RELATIVE):
    """pytest.approx for the sum of float32 `terms`: each term may move by rel of the largest |term|, and the
    moves add up at most over all terms, so the sum's tolerance is rel times the sum of |terms|."""
    return pytest.approx(expected_sum, rel=rel, abs=rel * terms.detach().double().abs().sum().item())


def assert_close_float32(actual: torch.Tensor, expected: torch.Tensor, rel: float = FLOAT32_RELATIVE, msg=None):
    """torch.testing.assert_close for float32 results: rtol rel, atol rel of the largest |expected|."""
    scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale, msg=msg)
