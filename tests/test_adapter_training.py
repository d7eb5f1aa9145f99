"""Role adapter training on the tiny random model: loss, save/reload, resume, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import chorus
from chorus.errors import AdapterError, ChorusError
from chorus.runtime.manifest import read_manifest
from chorus.training.dataset import collate, encode
from chorus.training.examples import generate
from chorus.training.trainer import TrainingPlan, checkpoint_of, completion_loss, train


@pytest.fixture(scope="session")
def role_data(tmp_path_factory) -> Path:
    """A small but real data folder from the shipped catalogue."""
    out = tmp_path_factory.mktemp("roles")
    generate(out, per_tool=(1, 1), doubles=(4, 2), cap=(24, 8))
    return out


def _plan(tmp_path: Path, role_data: Path, **options) -> TrainingPlan:
    settings = dict(name="caller", roles=["caller"], data=str(role_data),
                    output=str(tmp_path / "caller"), steps=6, batch_size=2,
                    learning_rate=5e-3, seed=1, checkpoint_every=2, warmup_steps=1)
    return TrainingPlan(**{**settings, **options})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "adapter_model.safetensors")


def test_training_lowers_the_loss_on_the_training_examples(tiny, role_data, tmp_path):
    plan = _plan(tmp_path, role_data, steps=12, batch_size=4, learning_rate=2e-2)
    tokenizer = tiny.backend.tokenizer
    examples = [json.loads(line) for line in
                (role_data / "train" / "caller.jsonl").read_text().splitlines()[:4]]
    batch = collate([encode(tokenizer, e["messages"], e["target"]) for e in examples],
                    tokenizer.pad_token_id)

    def loss() -> float:
        with tiny.adapters.trainable("caller") as (module, _), torch.no_grad():
            return completion_loss(module, batch).item()

    tiny.adapters.create("caller", seed=plan.seed)
    before = loss()  # LoRA starts as a no-op: this is the base model's loss
    tiny.adapters.remove("caller")
    result = train(tiny, plan)
    assert len(result.losses) == 12
    assert loss() < before * 0.9


def test_a_saved_adapter_reloads_to_identical_logits(tiny, tiny_model_dir, role_data,
                                                      tmp_path):
    result = train(tiny, _plan(tmp_path, role_data, steps=3))
    prompt = tiny.backend.tokenizer("Call the weather tool for Oslo", return_tensors="pt")
    with tiny.adapters.applied(["caller"]) as (module, _), torch.no_grad():
        trained = module(**prompt).logits
    fresh = chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)
    fresh.adapters.load(result.path, name="caller")
    with fresh.adapters.applied(["caller"]) as (module, _), torch.no_grad():
        reloaded = module(**prompt).logits
    assert torch.equal(trained, reloaded)
    with fresh.adapters.applied(["__base__"]) as (module, _), torch.no_grad():
        assert not torch.equal(module(**prompt).logits, reloaded)  # training changed it


def test_the_base_beside_adapters_is_the_plain_model_and_the_adapters_stay_as_they_were(
        tiny, tiny_model_dir, role_data, tmp_path):
    train(tiny, _plan(tmp_path, role_data, steps=3))
    prompt = tiny.backend.tokenizer("Call the weather tool for Oslo", return_tensors="pt")
    plain = chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)
    with plain.adapters.applied(["__base__"]) as (module, _), torch.no_grad():
        expected = module(**prompt).logits
    with tiny.adapters.applied(["caller"]) as (module, _), torch.no_grad():
        adapted = module(**prompt).logits
        trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    for rows in (["__base__"], ["__base__", "caller"]):  # one path, and the row-wise one
        with tiny.adapters.applied(rows) as (module, options), torch.no_grad():
            batch = {key: value.repeat(len(rows), 1) for key, value in prompt.items()}
            assert torch.allclose(module(**batch, **options).logits[0], expected[0],
                                  atol=1e-5)
    with tiny.adapters.applied(["caller"]) as (module, _), torch.no_grad():
        assert torch.equal(module(**prompt).logits, adapted)
        assert {name for name, p in module.named_parameters() if p.requires_grad} == trainable


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_model_dir, role_data, tmp_path):
    def model():
        return chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)

    whole = train(model(), _plan(tmp_path / "whole", role_data))

    def stop_at_three(step: int, _loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    plan = _plan(tmp_path / "split", role_data)
    with pytest.raises(KeyboardInterrupt):
        train(model(), plan, on_step=stop_at_three)
    assert checkpoint_of(Path(plan.output)).is_file()
    resumed = train(model(), plan)
    assert resumed.resumed_at == 3
    assert resumed.losses == whole.losses
    first, second = _weights(whole.path), _weights(resumed.path)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not checkpoint_of(Path(plan.output)).exists()  # finished runs clean up


def test_a_checkpoint_from_other_settings_is_not_resumed_silently(tiny, role_data, tmp_path):
    def stop(step, _loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny, _plan(tmp_path, role_data), on_step=stop)
    with pytest.raises(ChorusError, match="other settings.*learning_rate.*--restart"):
        train(tiny, _plan(tmp_path, role_data, learning_rate=1e-4))
    restarted = train(tiny, _plan(tmp_path, role_data, learning_rate=1e-4), restart=True)
    assert restarted.resumed_at == 0


def test_the_manifest_records_base_data_seed_and_command(tiny, role_data, tmp_path):
    result = train(tiny, _plan(tmp_path, role_data, steps=2), command="chorus adapters train")
    manifest = read_manifest(result.path)
    data_manifest = json.loads((role_data / "manifest.json").read_text())
    assert manifest.base_model.fingerprint == tiny.adapters.base_fingerprint
    assert manifest.training.data_version == data_manifest["version"]
    assert manifest.training.seed == 1 and manifest.training.steps == 2
    assert manifest.command == "chorus adapters train"
    assert manifest.role == "caller"


def test_training_continues_from_another_adapter(tiny, role_data, tmp_path):
    backbone = train(tiny, _plan(tmp_path, role_data, name="backbone", roles=["planner",
                     "caller"], output=str(tmp_path / "backbone"), steps=2))
    role = train(tiny, _plan(tmp_path, role_data, from_adapter=str(backbone.path), steps=2))
    assert read_manifest(role.path).training.from_adapter == str(backbone.path)
    start, end = _weights(backbone.path), _weights(role.path)
    assert any(not torch.equal(start[key], end[key]) for key in start)


def test_an_adapter_trained_for_another_base_is_refused(tiny, role_data, tmp_path):
    result = train(tiny, _plan(tmp_path, role_data, steps=1))
    manifest = read_manifest(result.path)
    manifest.base_model.fingerprint = "0123456789abcdef"
    (result.path / "chorus.json").write_text(manifest.model_dump_json())
    tiny.adapters.remove("caller")
    with pytest.raises(AdapterError, match=r"trained for base model .* \(fingerprint "
                                           "0123456789abcdef.*train the adapter again"):
        tiny.adapters.load(result.path, name="caller")
    assert "caller" not in tiny.adapters


def test_the_fingerprint_ignores_dtype_but_tells_models_apart(tiny, tiny_model_dir, smol):
    half = chorus.load_model(tiny_model_dir, dtype="bfloat16", show_progress=False)
    assert half.adapters.base_fingerprint == tiny.adapters.base_fingerprint
    assert smol.adapters.base_fingerprint != tiny.adapters.base_fingerprint


def test_examples_that_do_not_fit_are_skipped_and_none_fitting_is_an_error(tiny, role_data,
                                                                          tmp_path):
    with pytest.raises(ChorusError, match="fits in 10 tokens"):
        train(tiny, _plan(tmp_path, role_data, max_tokens=10))
