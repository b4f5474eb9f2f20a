"""nbgrader preprocessor, before execution: the course's derived files, built once by the grader, for every kernel.

A kernel's home is an empty folder, so without this each kernel would build GPT-2's tokenizer folder
from its vocabulary files before loading the toy world, most of that cell's time. The grader builds it
once, in `settings.KERNEL_CACHE` (in the repository's git-ignored build/, outside the course directory,
which kernels cannot see), and writes it into the grading record, from which `RobustExecute` gives it to
every kernel's environment (LATENT_GRADIENTS_CACHE). The sandbox shows it
read-only, like the rest of the file system: no submission can change what the next one reads. Where it
cannot be built (a read-only checkout), each kernel builds its own. A workshop's instructor cannot write
the repository: `make workshop` builds it beforehand, as root (workshop/prepare.py).
"""

from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from grading.grader import settings
from grading.grader.record import record_of

BUILT = "built"


class ShareKernelCache(NbGraderPreprocessor):
    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        try:
            record_of(resources).kernel_cache = str(build_kernel_cache())
        except OSError as error:
            self.log.warning("Kernels will build their own tokenizer: cannot write %s (%s)", settings.KERNEL_CACHE, error)
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
