"""The grader builds the kernels' tokenizer folder once and records it for the kernels; the sandbox shows it read-only."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from grading.grader import kernel_cache, sandbox, settings
from grading.grader.record import record_of
from part_utils.settings import CACHE_ENV


def _shared_cache() -> str:
    resources: dict = {}
    kernel_cache.ShareKernelCache().preprocess(nbformat.v4.new_notebook(), resources)
    return record_of(resources).kernel_cache


def test_the_cache_is_built_once_and_handed_to_kernels(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(settings, "KERNEL_CACHE", tmp_path / "kernel-cache")
    assert _shared_cache() == str(tmp_path / "kernel-cache")
    assert (tmp_path / "kernel-cache" / kernel_cache.BUILT).exists()
    (tokenizer,) = (tmp_path / "kernel-cache").glob("*/tokenizer.json")
    built = tokenizer.stat().st_mtime_ns
    # a second batch, in a fresh grader process: the folder is reused, not rebuilt
    assert _shared_cache() == str(tmp_path / "kernel-cache") and tokenizer.stat().st_mtime_ns == built


@pytest.mark.slow  # a sandboxed kernel loads the world: the verdict tests already start one in the fast tier
@pytest.mark.skipif(sandbox.sandbox_problem() is not None, reason=f"no sandbox here: {sandbox.sandbox_problem()}")
def test_a_kernel_reads_the_cache_but_cannot_change_it(tmp_path) -> None:
    # The grading cache itself (the repository's build/): the sandbox empties /tmp, where tmp_path is.
    cache = _shared_cache()
    code = ("from part_utils.tokenizer import gpt2_model_tokenizer\n"
            "assert gpt2_model_tokenizer().decode(gpt2_model_tokenizer()('Hello world')['input_ids'][1:]) == 'Hello world'\n"
            "print('loaded')\n"
            f"open({str(settings.KERNEL_CACHE / 'mine')!r}, 'w')\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = settings.kernel_env(1) | {"HOME": str(scratch), CACHE_ENV: cache}
    result = subprocess.run([*sandbox.bwrap_prefix(scratch, [], sandbox.grader_account()), sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout == "loaded\n", result.stderr
    assert "Read-only file system" in result.stderr and not (settings.KERNEL_CACHE / "mine").exists(), result.stderr
