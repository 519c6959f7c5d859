"""Dense bf16 peak FLOP/s of accelerators, for MFU (torch-free).

Figures are the vendors' datasheet numbers for dense BF16 tensor/matrix-core math (without 2:4 sparsity), per
device. Where a product comes in variants of different clocks (H100 SXM / PCIe / NVL), the name
`torch.cuda.get_device_name()` reports tells them apart; patterns are tried in order, most specific first.
A device not listed gets no MFU unless `mfu_calculator.config.peak_flops_per_device` gives its peak.
"""

from __future__ import annotations

import re

# (pattern over the reported device name, peak FLOP/s, what it is)
PEAK_BF16_FLOPS: tuple[tuple[str, float, str], ...] = (
    # NVIDIA Blackwell
    (r"\bGB200\b", 2500e12, "NVIDIA GB200 (per GPU)"),
    (r"\bB200\b", 2250e12, "NVIDIA B200"),
    (r"\bB100\b", 1750e12, "NVIDIA B100"),
    # NVIDIA Hopper
    (r"\bGH200\b", 989e12, "NVIDIA GH200"),
    (r"\bH200\b", 989e12, "NVIDIA H200"),
    (r"\bH100\b.*\bPCIe\b", 756e12, "NVIDIA H100 PCIe"),
    (r"\bH100\b.*\bNVL\b", 835e12, "NVIDIA H100 NVL"),
    (r"\bH100\b", 989e12, "NVIDIA H100 SXM"),
    (r"\bH800\b.*\bPCIe\b", 756e12, "NVIDIA H800 PCIe"),
    (r"\bH800\b", 989e12, "NVIDIA H800 SXM"),
    # NVIDIA Ada and Ampere
    (r"\bL40S\b", 362e12, "NVIDIA L40S"),
    (r"\bL40\b", 181e12, "NVIDIA L40"),
    (r"\bL4\b", 121e12, "NVIDIA L4"),
    (r"\bA100\b", 312e12, "NVIDIA A100"),
    (r"\bA800\b", 312e12, "NVIDIA A800"),
    (r"\bA40\b", 150e12, "NVIDIA A40"),
    (r"\bA10\b", 125e12, "NVIDIA A10"),
    # AMD Instinct
    (r"\bMI355X\b", 2500e12, "AMD Instinct MI355X"),
    (r"\bMI325X\b", 1307e12, "AMD Instinct MI325X"),
    (r"\bMI300X\b", 1307e12, "AMD Instinct MI300X"),
    (r"\bMI300A\b", 981e12, "AMD Instinct MI300A"),
    # ROCm reports both MI250X and MI250 as "MI250X/MI250": the lower figure (MI250), so MFU is not overstated
    (r"\bMI250X?\b", 362e12, "AMD Instinct MI250"),
    (r"\bMI210\b", 181e12, "AMD Instinct MI210"),
)


def peak_flops_of_device_name(device_name: str) -> float | None:
    """The dense bf16 peak of the device ``torch.cuda.get_device_name()`` calls ``device_name``, or None."""
    for pattern, peak, _ in PEAK_BF16_FLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None
