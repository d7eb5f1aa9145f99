"""Shared fixtures: a real tokenizer, a tiny random Llama, and the real embedded SmolLM2.

No test touches the network, and the GGUF conversion cache lives in a per-session directory.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests check behaviour on the small embedded model (and its processes inherit this); the
# tests of answers on the default model name it explicitly.
os.environ["CHORUS_MODEL"] = "smollm2-135m"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import chorus  # noqa: E402
from chorus.runtime.embedded import EMBEDDED  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def chorus_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CHORUS_HOME for the whole session: the conversion cache is real but never in ~/.cache.

    Autouse, so that no test, whatever it loads, can write into the user's cache."""
    home = tmp_path_factory.mktemp("chorus-home")
    previous = os.environ.get("CHORUS_HOME")
    os.environ["CHORUS_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("CHORUS_HOME", None)
    else:
        os.environ["CHORUS_HOME"] = previous


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2 tokenizer (with its chat template), read from the embedded GGUF."""
    from transformers import AutoTokenizer

    gguf = EMBEDDED["smollm2-135m"].gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    directory = tmp_path_factory.mktemp("smol-tokenizer")
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(smol_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with SmolLM2's tokenizer and chat template: fast, not smart."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # With the default 0.02 every greedy output is one token repeated ("\n\n\n..."),
        # which would make the comparisons of texts in the tests vacuous.
        initializer_range=0.2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    directory = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def tiny(tiny_model_dir: Path) -> chorus.Model:
    """A fresh tiny model per test, so adapters and grammars never leak between tests."""
    return chorus.load_model(tiny_model_dir, dtype="float32", show_progress=False)


@pytest.fixture(scope="session")
def smol(chorus_home: Path) -> chorus.Model:
    """The real embedded SmolLM2-135M-Instruct on transformers, converted once into the
    session CHORUS_HOME."""
    return chorus.load_model(dtype="float32", backend="transformers", show_progress=False)


@pytest.fixture(scope="session")
def smol_llama(chorus_home: Path) -> chorus.Model:
    """The same embedded GGUF run directly by llama.cpp."""
    return chorus.load_model(backend="llamacpp")


@pytest.fixture(scope="session")
def qwen(chorus_home: Path) -> chorus.Model:
    """The default embedded model, Qwen2.5-Coder-0.5B-Instruct, on llama.cpp: for the tests
    of answers (which tool, which arguments, which number), not of mechanics."""
    return chorus.load_model("qwen2.5-coder-0.5b", backend="llamacpp")
