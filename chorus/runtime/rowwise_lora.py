"""A batch whose rows use different LoRA adapters, as two batched matmuls per layer.

peft's own per-row path (`adapter_names=`) loops over the adapters in every layer with
Python-side indexing; on this CPU that overhead costs more than the LoRA maths. Here each
LoRA layer gets, for the whole generation, the row-stacked A and (scaled) B matrices, and a
forward hook adds `x @ A_row^T @ B_row^T` to the base output: the idea of Punica's BGMV
kernel, in plain torch. Rows on the plain base have zero matrices.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft.tuners.lora import Linear as LoraLinear


def supports_rowwise(peft_model, rows: list[str]) -> bool:
    """Plain LoRA on Linear layers only; variants such as DoRA keep peft's own path."""
    for module in peft_model.modules():
        if isinstance(module, LoraLinear) and any(r in module.lora_variant for r in rows):
            return False
    return True


def _stack(module: LoraLinear, rows: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ranks = [module.lora_A[r].weight.shape[0] for r in rows if r in module.lora_A]
    rank = max(ranks)
    reference = next(module.lora_A[r].weight for r in rows if r in module.lora_A)
    a = torch.zeros(len(rows), rank, module.in_features, dtype=reference.dtype)
    b = torch.zeros(len(rows), module.out_features, rank, dtype=reference.dtype)
    for index, name in enumerate(rows):
        if name in module.lora_A:
            r = module.lora_A[name].weight.shape[0]
            a[index, :r] = module.lora_A[name].weight
            b[index, :, :r] = module.lora_B[name].weight * module.scaling[name]
    return a.transpose(1, 2), b.transpose(1, 2)  # (rows, in, r), (rows, r, out)


@contextmanager
def rowwise_adapters(peft_model, rows: list[str]) -> Iterator[None]:
    """Within the block, row i of every forward pass uses adapter rows[i] (peft names;
    unknown names such as peft's "__base__" mean no adapter)."""
    hooks = []

    def add_delta(a: torch.Tensor, b: torch.Tensor):
        def hook(_module, args, output):
            x = args[0]
            delta = torch.bmm(torch.bmm(x.to(a.dtype), a), b)
            return output + delta.to(output.dtype)
        return hook

    try:
        with torch.no_grad(), peft_model.disable_adapter():
            for module in peft_model.modules():
                if isinstance(module, LoraLinear) and any(r in module.lora_A for r in rows):
                    hooks.append(module.register_forward_hook(add_delta(*_stack(module, rows))))
            yield
    finally:
        for handle in hooks:
            handle.remove()
