"""Time from a fresh kernel to the first passing checks, as a learner's notebook meets them.

Run in a fresh Python process (as `make bench` does), this does what the notebook's first cells do
and prints, as `stage seconds` lines, how long each took since the process started:

- `libraries`: the learner's own imports (torch, sae_lens, transformer_lens): not the course's;
- `course imports`: `import tests` and `part_utils` (the course's own modules);
- `world`: loading the world (the toy world; `gpt2-shape`: the GPT-2-shaped world of random weights);
- `first check`: `tests.test_sparse_tensor` passed the reference, on its first call;
- `first gradient check`: `tests.test_latent_to_latent_gradients` passed the reference, on its first
  call (it loads the SAEs it needs and warms up every path it runs).

    python scripts/first_check.py {toy,gpt2-shape} [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def stage(name: str) -> None:
    print(f"{name}\t{time.perf_counter() - START:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", choices=("toy", "gpt2-shape"))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import sae_lens  # noqa: F401
    import torch
    import transformer_lens  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    stage("libraries")
    import part_utils
    import tests

    stage("course imports")
    if args.world == "toy":
        world = part_utils.load_world("toy", device="cpu", verbose=False)
    else:
        from scripts.bench_worlds import gpt2_shaped_world

        world, _ = gpt2_shaped_world(seed=0)
    stage("world")
    import solutions

    with contextlib.redirect_stdout(io.StringIO()):
        tests.test_sparse_tensor(solutions.SparseTensor)
    stage("first check")
    with contextlib.redirect_stdout(io.StringIO()):
        tests.test_latent_to_latent_gradients(solutions.latent_to_latent_gradients, world.model, world.saes)
    stage("first gradient check")


if __name__ == "__main__":
    main()
