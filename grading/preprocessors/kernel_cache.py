"""nbgrader preprocessor, before execution: the course's derived files, built once by the grader, for every kernel.

A kernel's home is an empty folder, so without this each kernel would build GPT-2's tokenizer folder
from its vocabulary files before loading the toy world, most of that cell's time. The grader builds it
once, in `settings.KERNEL_CACHE` (in the repository's git-ignored build/, outside the course directory,
which kernels cannot see), and points every kernel there (LATENT_GRADIENTS_CACHE). The sandbox shows it
read-only, like the rest of the file system: no submission can change what the next one reads. Where it
cannot be built (a read-only checkout), each kernel builds its own. A workshop's instructor cannot write
the repository: `make workshop` builds it beforehand, as root (workshop/prepare.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from grading.grader import settings
from part_utils.environment import CACHE_ENV

BUILT = "built"


class ShareKernelCache(NbGraderPreprocessor):
    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        if os.environ.get(CACHE_ENV) != str(settings.KERNEL_CACHE):
            try:
                build_kernel_cache()
            except OSError as error:
                self.log.warning("Kernels will build their own tokenizer: cannot write %s (%s)", settings.KERNEL_CACHE, error)
                return nb, resources
            os.environ[CACHE_ENV] = str(settings.KERNEL_CACHE)  # the provisioner hands the grader's environment to kernels
        return nb, resources


def build_kernel_cache() -> Path:
    """The cache's files in `settings.KERNEL_CACHE`, unless an earlier batch built them (`BUILT` is written last)."""
    folder = settings.KERNEL_CACHE
    if (folder / BUILT).exists():
        return folder
    from part_utils.tokenizer import tokenizer_folder  # imports transformers: once, in the worker that builds

    tokenizer_folder(folder)  # two workers may race: part_utils renames the folder into place
    (folder / BUILT).touch()
    return folder
