"""The llama.cpp backend on the real embedded GGUF: plain, streamed, constrained and adapter
calls, the per-adapter prefix cache, and clear errors for broken files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import chorus
from chorus.errors import AdapterError, ModelLoadError, UnsupportedSchemaError
from chorus.runtime import GenerationRequest, Regex
from chorus.runtime.embedded import EMBEDDED
from chorus.runtime.library import SHIPPED

QUESTION = "What is the capital of France? Answer in one sentence."


def test_plain_and_streamed_replies_are_the_same_text(smol_llama):
    plain = smol_llama.generate(QUESTION, max_new_tokens=24)
    assert "Paris" in plain.text
    assert plain.prompt_tokens > 10 and 0 < plain.new_tokens <= 24
    pieces = []
    streamed = smol_llama.generate(QUESTION, max_new_tokens=24, on_text=pieces.append)
    assert streamed.text == plain.text == "".join(pieces)


def test_stop_strings_budgets_and_repeated_lines(smol_llama):
    stopped = smol_llama.generate("Count from 1 to 9, one number per line.", stop="4",
                                  max_new_tokens=40)
    assert stopped.finish_reason == "stop_string" and "4" not in stopped.text
    short = smol_llama.generate("Tell me a long story.", max_new_tokens=5)
    assert short.finish_reason == "length" and short.new_tokens == 5
    looped = smol_llama.generate("Write the line 'ok' ten times, one per line.",
                                 stop_on_repeated_line=True, max_new_tokens=60)
    lines = [line.strip() for line in looped.text.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))


def test_a_loop_under_a_grammar_with_closings_is_taken_back_and_closed(smol_llama):
    """SmolLM2 loops on "ok" lines; under "end with a P.S." the loop used to end the reply
    before its P.S. (a failed output). Its repeated line is taken back and the closing
    written in its place, so the reply ends as the grammar wants."""
    from chorus.checks import check_all
    from chorus.checks.compiling import compile_constraints

    constraints = [{"type": "postscript", "marker": "P.S."}]
    result = smol_llama.generate("Write the line 'ok' ten times, one per line.",
                                 output=compile_constraints(constraints).output,
                                 stop_on_repeated_line=True, max_new_tokens=120)
    assert all(outcome.passed for outcome in check_all(result.text, constraints))
    lines = [line.strip() for line in result.text.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))

def test_constrained_outputs_are_valid(smol_llama):
    schema = {"type": "object", "required": ["city", "days"], "properties": {
        "city": {"type": "string", "maxLength": 20}, "days": {"type": "integer"}}}
    result = smol_llama.generate("Plan a trip to Rome as JSON.", output=schema,
                                 max_new_tokens=40)
    assert set(result.value) == {"city", "days"} and json.loads(result.text) == result.value
    assert smol_llama.generate("Is the sky blue?", output=["yes", "no"]).value in ("yes", "no")
    assert smol_llama.generate("A year:", output=Regex(r"(19|20)\d\d")).value.isdigit()


def test_a_seed_makes_sampling_reproducible(smol_llama):
    options = dict(temperature=1.0, max_new_tokens=16, seed=7)
    first = smol_llama.generate("Name an animal.", **options)
    assert smol_llama.generate("Name an animal.", **options).text == first.text


def _next_token_logits(model, messages, adapter):
    """The logits after the prompt, on either backend, computed from scratch."""
    backend = model.backend
    if hasattr(backend, "llm"):  # llama.cpp
        tokens = backend.prompt_tokens(messages)
        backend._switch(adapter)
        backend.llm.reset()
        backend._kv_tokens = []
        backend._extend(tokens)
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(backend.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(backend.n_vocab,)).copy()
    import torch

    ids = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
    with backend.adapters.applied([adapter or "__base__"]) as (module, _), torch.no_grad():
        return module(torch.tensor([list(ids)])).logits[0, -1].numpy()


def test_a_gguf_lora_moves_the_logits_as_the_peft_adapter_does(smol, smol_llama):
    """The planner adapter converted to GGUF, against peft on the same (dequantised) weights.
    llama.cpp computes with the quantised weights and quantised activations, so logits differ
    a little even without an adapter (measured: max 0.65, correlation 0.999); the test asks
    that the adapter's effect on the next-token logits be the same shift (correlation of the
    two shifts >= 0.95; 0.988 measured) and pick the same next token."""
    for model in (smol, smol_llama):
        if "planner" not in model.adapters:
            model.adapters.load(SHIPPED / "planner-v1", name="planner")
    for prompt in ("Weather in Oslo tomorrow?", "What is 12 * 12?", "Say hello to Ada."):
        messages = [{"role": "user", "content": prompt}]
        peft = {a: _next_token_logits(smol, messages, a) for a in (None, "planner")}
        gguf = {a: _next_token_logits(smol_llama, messages, a) for a in (None, "planner")}
        shift_peft, shift_gguf = peft["planner"] - peft[None], gguf["planner"] - gguf[None]
        assert np.abs(shift_peft).max() > 1.0, "the adapter should change the logits"
        assert np.corrcoef(shift_peft, shift_gguf)[0, 1] >= 0.95, prompt
        assert peft["planner"].argmax() == gguf["planner"].argmax(), prompt


def test_switching_adapters_never_reuses_another_adapters_cache(smol_llama):
    if "caller" not in smol_llama.adapters:
        smol_llama.adapters.load(SHIPPED / "caller-v1", name="caller")
    backend = smol_llama.backend
    request = GenerationRequest(messages="List three fruits.", max_new_tokens=12)
    under_caller = request.model_copy(update={"adapter": "caller"})
    first = backend.generate_batch([under_caller])[0].text
    base = backend.generate_batch([request])[0].text
    again = backend.generate_batch([under_caller])[0].text
    assert again == first and base != first
    fresh = chorus.load_model(backend="llamacpp")
    fresh.adapters.load(SHIPPED / "caller-v1", name="caller")
    assert fresh.backend.generate_batch([under_caller])[0].text == first


def test_a_repeated_prompt_evaluates_only_the_new_suffix(smol_llama):
    backend = smol_llama.backend
    system = {"role": "system", "content": "You are terse. " * 40}
    backend.generate_batch([GenerationRequest(
        messages=[system, {"role": "user", "content": "Hi"}], max_new_tokens=1)])
    evaluated = []
    original = backend.llm.eval
    backend.llm.eval = lambda tokens: (evaluated.append(len(tokens)), original(tokens))[1]
    try:
        backend.generate_batch([GenerationRequest(
            messages=[system, {"role": "user", "content": "Hello there"}], max_new_tokens=1)])
    finally:
        backend.llm.eval = original
    prompt = len(backend.prompt_tokens([system, {"role": "user", "content": "Hello there"}]))
    assert sum(evaluated) < prompt / 4


def test_broken_files_give_clear_errors(tmp_path, smol_llama):
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(EMBEDDED["smollm2-135m"].gguf().read_bytes()[:4096])
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        chorus.load_model(corrupt, backend="llamacpp")
    adapter = tmp_path / "garbled"
    shutil.copytree(SHIPPED / "caller-v1", adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"not weights")
    (adapter / "chorus.json").unlink()
    with pytest.raises(AdapterError, match="garbled"):
        smol_llama.adapters.load(adapter)
    foreign = tmp_path / "foreign"
    shutil.copytree(SHIPPED / "caller-v1", foreign)
    manifest = json.loads((foreign / "chorus.json").read_text())
    manifest["base_model"]["gguf_sha256"] = "0" * 64
    (foreign / "chorus.json").write_text(json.dumps(manifest))
    with pytest.raises(AdapterError, match="only works on the weights"):
        smol_llama.adapters.load(foreign)
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="runs GGUF files"):
        chorus.load_model(folder, backend="llamacpp")


def test_an_adapters_size_is_read_from_its_header_without_loading_it(tmp_path):
    from chorus.runtime.gguf_lora import peft_parameters, read_peft

    _, weights = read_peft(SHIPPED / "caller-v1")
    assert peft_parameters(SHIPPED / "caller-v1") == sum(int(w.size) for w in weights.values())
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(AdapterError, match="Cannot read the adapter"):
        peft_parameters(tmp_path)


def test_the_llamacpp_path_never_imports_torch():
    code = ("import sys, chorus\n"
            "model = chorus.load_model(backend='llamacpp')\n"
            "model.generate('Hi', max_new_tokens=2, output=['yes', 'no'])\n"
            "print(','.join(sorted({'torch', 'transformers', 'peft'} & set(sys.modules))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
    assert "Warning" not in done.stderr and "warn" not in done.stderr.lower()


def _evaluated_tokens(backend, request) -> tuple[int, str]:
    """Tokens the backend had to evaluate for `request`, and the text it wrote."""
    counted = []
    original = backend.llm.eval
    backend.llm.eval = lambda tokens: (counted.append(len(tokens)), original(tokens))[1]
    try:
        text = backend.generate_batch([request])[0].text
    finally:
        backend.llm.eval = original
    return sum(counted), text


def test_prompt_states_on_disk_serve_a_new_process_under_the_same_adapter_only():
    from chorus.runtime.llamacpp import LlamaCppBackend

    system = {"role": "system", "content": "You answer in French. " * 30}
    request = GenerationRequest(messages=[system, {"role": "user", "content": "Bonjour"}],
                                max_new_tokens=4)
    first = LlamaCppBackend(EMBEDDED["smollm2-135m"].gguf(), name="first")
    computed, text = _evaluated_tokens(first, request)
    # as a later process would
    second = LlamaCppBackend(EMBEDDED["smollm2-135m"].gguf(), name="second")
    loaded, again = _evaluated_tokens(second, request)
    assert again == text and loaded < computed / 4
    second.adapters.load(SHIPPED / "caller-v1", name="caller")
    other, _ = _evaluated_tokens(second, request.model_copy(update={"adapter": "caller"}))
    assert other >= computed - 1  # nothing computed under the base model was reused


def test_prompts_are_the_tokens_transformers_would_give(smol, smol_llama):
    """The GGUF's chat template rendered by llama.cpp's jinja2, tokenized by llama.cpp: the
    same ids as transformers' apply_chat_template, so adapters see what they trained on."""
    conversations = [
        [{"role": "user", "content": QUESTION}],
        [{"role": "system", "content": "You are the planner. Tools: calculator(expression)"},
         {"role": "user", "content": "Task: What is 12 * 12?\nPlan: Call calculator."}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "Écris « bonjour » ✓"}],
    ]
    for messages in conversations:
        expected = smol.backend.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert smol_llama.backend.prompt_tokens(messages) == list(expected)


def test_what_a_grammar_forces_is_fed_in_one_pass(smol_llama):
    schema = {"type": "object", "required": ["city", "country"], "additionalProperties": False,
              "properties": {"city": {"type": "string", "maxLength": 20},
                             "country": {"type": "string", "maxLength": 20}}}
    request = GenerationRequest(messages=[{"role": "user", "content": "Where is the Louvre?"}],
                                output=schema, max_new_tokens=40)
    batches = []
    backend = smol_llama.backend
    original = backend.llm.eval
    backend.llm.eval = lambda tokens: (batches.append(len(tokens)), original(tokens))[1]
    try:
        [result] = backend.generate_batch([request])
    finally:
        backend.llm.eval = original
    assert set(result.value) == {"city", "country"}
    # after the prompt, `{"city": "` and `", "country": "` go in as one batch each
    assert any(size > 1 for size in batches[1:])
    assert len(batches) - 1 < result.new_tokens


def test_the_vocabulary_is_read_once_per_model_file(tmp_path, smol_llama):
    import llama_cpp

    from chorus.runtime.llama_vocab import cached_pieces, read_pieces

    backend = smol_llama.backend
    vocab = llama_cpp.llama_model_get_vocab(backend.llm.model)
    pieces = read_pieces(llama_cpp, vocab)
    sha = backend.adapters.gguf_sha256
    assert cached_pieces(tmp_path, sha, llama_cpp, vocab) == pieces
    [stored] = tmp_path.iterdir()
    whole = stored.read_bytes()
    assert cached_pieces(tmp_path, sha, None, None) == pieces  # read back, not from llama.cpp
    stored.write_bytes(whole[:-7])  # cut short: read again from the model, and stored anew
    assert cached_pieces(tmp_path, sha, llama_cpp, vocab) == pieces
    assert stored.read_bytes() == whole
    assert any(piece.startswith(b"\xff<|im_start|>") for piece in pieces)  # marked special


def test_a_row_whose_grammar_cannot_be_enforced_fails_alone_in_its_batch(smol_llama):
    bad = {"type": "string", "pattern": "(?=a)b"}
    results = smol_llama.generate_batch([
        GenerationRequest(messages=QUESTION, max_new_tokens=3, output=bad),
        GenerationRequest(messages=QUESTION, max_new_tokens=3)])
    assert "look" in results[0].error and results[1].error is None
    with pytest.raises(UnsupportedSchemaError):
        smol_llama.generate(QUESTION, max_new_tokens=3, output=bad)


def test_two_responses_under_a_word_count_get_a_mask_over_a_large_vocabulary(qwen):
    """Two responses as a complement intersected with a word count and the casing passed
    llguidance's check over bytes, yet over Qwen's 152k tokens building the matcher ran
    out of lexer fuel (after 20 s), and the answer lost its grammar."""
    import numpy as np

    from chorus.checks.compiling import compile_constraints

    compiled = compile_constraints([
        {"type": "two_responses", "separator": "******"}, {"type": "lowercase"},
        {"type": "forbidden_words", "words": ["calories"]},
        {"type": "word_count", "relation": "at_most", "value": 29}])
    assert compiled.compiled == (0, 1, 2, 3)
    matcher = qwen.backend.grammars.matcher(compiled.output)
    bitmask = np.zeros((qwen.backend.grammars.llg_tokenizer.vocab_size + 31) // 32,
                       dtype=np.int32)
    matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
    assert not matcher.is_error(), matcher.get_error()
    assert bitmask.any()
