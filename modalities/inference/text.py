"""``inference_component/text``: text generation from a prompt, as the reference's ``generate_text`` does it.

Each new token is predicted from the whole context so far (no KV cache: the models here are small or the
context short), greedily at temperature 0, otherwise sampled from softmax(logits / temperature). Generation stops
at the EOD token or when the context reaches ``sequence_length``.
"""

from __future__ import annotations

import re
import sys
from typing import Callable, TextIO

import torch
import torch.nn.functional as F
from torch import nn


class TextInferenceComponent:
    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        prompt_template: str,
        sequence_length: int,
        device: int | str,
        temperature: float | None = 1.0,
        eod_token: str | None = "<eod>",
    ):
        from modalities.checkpointing.torch_loading import torch_device

        self.device = torch_device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"inference_component/text: device {self.device} asked for, but there is no CUDA GPU; set device: cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.prompt_template = prompt_template
        self.sequence_length = sequence_length
        self.temperature = temperature or 0.0
        self.eod_token = eod_token
        self.sample_key = getattr(model, "sample_key", "input_ids")
        self.prediction_key = getattr(model, "prediction_key", "logits")

    def prompt_variables(self) -> list[str]:
        return re.findall(r"\{(.*?)\}", self.prompt_template)

    def prompt(self, values: dict[str, str]) -> str:
        text = self.prompt_template.format(**values)
        if not text:
            raise ValueError("the prompt is empty")
        return text

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int | None = None, out: TextIO | None = None,
                 generator: torch.Generator | None = None) -> list[int]:
        """The generated token ids (without the prompt); the text is written to ``out`` as it grows."""
        context = list(self.tokenizer.tokenize(prompt))
        if len(context) >= self.sequence_length:
            raise ValueError(f"the prompt has {len(context)} tokens; sequence_length {self.sequence_length} leaves no room")
        budget = self.sequence_length - len(context)
        if max_new_tokens is not None:
            budget = min(budget, max_new_tokens)
        generated: list[int] = []
        shown = ""
        for _ in range(budget):
            inputs = torch.tensor([context], dtype=torch.long, device=self.device)
            logits = self.model({self.sample_key: inputs})[self.prediction_key][:, -1, :].float()
            if self.temperature > 0:
                probabilities = F.softmax(logits / self.temperature, dim=-1)
                token = int(torch.multinomial(probabilities, 1, generator=generator)[0, 0])
            else:
                token = int(torch.argmax(logits, dim=-1)[0])
            if self.eod_token is not None and self.tokenizer.decode([token]) == self.eod_token:
                break
            generated.append(token)
            context.append(token)
            if out is not None:
                text = self.tokenizer.decode(generated)
                out.write(text[len(shown):])
                out.flush()
                shown = text
        return generated

    def run(self, ask: Callable[[str], str] = input, out: TextIO = sys.stdout, max_new_tokens: int | None = None,
            values: dict[str, str] | None = None) -> str:
        """Ask for the template's variables (unless given), generate, and return the generated text."""
        values = dict(values or {})
        for name in self.prompt_variables():
            if name not in values:
                values[name] = ask(f"{name}: ")
        prompt = self.prompt(values)
        out.write(prompt)
        generated = self.generate(prompt, max_new_tokens=max_new_tokens, out=out)
        out.write("\n")
        return self.tokenizer.decode(generated)
