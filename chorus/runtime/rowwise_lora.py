"""A batch whose rows use different LoRA adapters, as two batched matmuls per layer.

peft's own per-row path (`adapter_names=`) loops over the adapters in every layer with
Python-side indexing; on this CPU that overhead costs more than the LoRA maths. Here each
LoRA layer holds every loaded adapter's A and (scaled) B matrices stacked once, and a forward
hook adds `x @ A_row^T @ B_row^T` to the base output, the matrices of each row picked by
index: the idea of Punica's BGMV kernel, in plain torch. Rows on the plain base pick zero
matrices. Stacking costs about 0.1 s for 4 adapters on SmolLM2; picking rows anew (a row
joined or left a running batch) costs an index per layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.other import AuxiliaryTrainingWrapper


def adapter_layers(peft_model) -> list[torch.nn.Module]:
    """The layers of `peft_model` that adapters change (what `adapters_off` switches)."""
    return [module for module in peft_model.modules()
            if isinstance(module, BaseTunerLayer | AuxiliaryTrainingWrapper)]


@contextmanager
def adapters_off(layers: list[torch.nn.Module]) -> Iterator[None]:
    """Within the block, `layers` (`adapter_layers`) compute as the base model's. What
    peft's `disable_adapter()` does, without its survey of the whole model and its
    requires_grad settings on every adapter weight there and back (for inference they
    change nothing): 0.12 s per use on SmolLM2 with 4 adapters, paid by every call that
    started a batch (benchmarks/RESULTS.md); here one flag per layer, put back after."""
    before = [layer._disable_adapters for layer in layers]
    for layer in layers:
        layer._disable_adapters = True
    try:
        yield
    finally:
        for layer, was in zip(layers, before, strict=True):
            layer._disable_adapters = was


def _is_plain(peft_model, name: str) -> bool:
    """Plain LoRA on Linear layers only; variants such as DoRA keep peft's own path."""
    return not any(isinstance(module, LoraLinear) and name in module.lora_variant
                   for module in peft_model.modules())


class RowwiseLora:
    """Every adapter of `peft_model` at the time it is made, stacked per LoRA layer."""

    def __init__(self, peft_model, layers: list[torch.nn.Module]):
        """`layers`: `adapter_layers(peft_model)`, switched off while rows pick their own."""
        self.peft_model = peft_model
        self.names = [name for name in peft_model.peft_config if _is_plain(peft_model, name)]
        self._slot = {name: index for index, name in enumerate(self.names)}  # the rest: zeros
        self._stacks = {module: _stack(module, self.names) for module in peft_model.modules()
                        if isinstance(module, LoraLinear) and module.lora_A}
        self._layers = layers
        self._picked: dict[LoraLinear, tuple[torch.Tensor, torch.Tensor]] = {}

    def knows(self, rows: list[str]) -> bool:
        """Are these rows' adapters all stacked here (an adapter added since, or a LoRA
        variant, is not)?"""
        return all(row in self._slot or row not in self.peft_model.peft_config for row in rows)

    def pick(self, rows: list[str]) -> None:
        """From the next forward on, row i uses adapter rows[i] (peft names; unknown names
        such as peft's "__base__" mean no adapter)."""
        index = torch.tensor([self._slot.get(row, len(self.names)) for row in rows])
        self._picked = {module: (a.index_select(0, index), b.index_select(0, index))
                        for module, (a, b) in self._stacks.items()}

    @contextmanager
    def applied(self, rows: list[str]) -> Iterator[None]:
        """Within the block every forward of the peft model goes row by row as picked."""
        self.pick(rows)
        hooks = []

        def add_delta(module):
            def hook(_module, args, output):
                a, b = self._picked[module]
                delta = torch.bmm(torch.bmm(args[0].to(a.dtype), a), b)
                return output + delta.to(output.dtype)
            return hook

        try:
            with torch.no_grad(), adapters_off(self._layers):
                for module in self._stacks:
                    hooks.append(module.register_forward_hook(add_delta(module)))
                yield
        finally:
            for handle in hooks:
                handle.remove()


def _stack(module: LoraLinear, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(adapters + 1, in, rank) A and (adapters + 1, rank, out) scaled B matrices; the last
    slot, and adapters this layer lacks, are zeros."""
    present = [name for name in names if name in module.lora_A]
    rank = max(module.lora_A[name].weight.shape[0] for name in present)
    reference = module.lora_A[present[0]].weight
    a = torch.zeros(len(names) + 1, rank, module.in_features, dtype=reference.dtype)
    b = torch.zeros(len(names) + 1, module.out_features, rank, dtype=reference.dtype)
    with torch.no_grad():
        for index, name in enumerate(names):
            if name in module.lora_A:
                r = module.lora_A[name].weight.shape[0]
                a[index, :r] = module.lora_A[name].weight
                b[index, :, :r] = module.lora_B[name].weight * module.scaling[name]
    return a.transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous()
