"""The course's settings, for learners and every process that runs the course: each `LATENT_GRADIENTS_` variable,
named once, and the typed values of those the course reads by value.

Standard library only, like `part_utils/network.py`: the autograder's nbgrader process and the
scripts that must fail fast import this without loading torch or sae_lens (the package's own
`__init__` imports its submodules lazily for that reason).
"""

import os

# Which world `load_world()` picks when the notebook does not say: auto, gpt2, toy or random. The grader and the
# workshop read it too: one variable chooses the world wherever the course runs.
WORLD_ENV = "LATENT_GRADIENTS_WORLD"
# Set by the autograder in every grading kernel: `load_world()` returns this world, whatever the notebook asks for.
GRADING_WORLD_ENV = "LATENT_GRADIENTS_GRADING_WORLD"
# Forces the device (cpu, cuda, mps) instead of the fastest one found.
DEVICE_ENV = "LATENT_GRADIENTS_DEVICE"
# Where the course keeps what it derives at run time (the tokenizer folder, compiled worlds).
CACHE_ENV = "LATENT_GRADIENTS_CACHE"
# Set by the workshop's hub in a learner's server: where the learner checks send their results (workshop/board/).
BOARD_URL_ENV = "LATENT_GRADIENTS_BOARD_URL"
# Seconds a cell may run when nbgrader runs the notebook: the grader's limit per cell, and Validate's in a workshop.
CELL_TIMEOUT_ENV = "LATENT_GRADIENTS_CELL_TIMEOUT"
# The slowest graded cell on the toy world (the attention check: the learner's function twice and the reference
# once) takes under 60 s on one busy CPU core; 300 s leaves a 5x margin while an infinite loop costs five minutes.
DEFAULT_CELL_TIMEOUT_S = 300


def world(default: str = "auto") -> str:
    """The world `LATENT_GRADIENTS_WORLD` names, lower-cased; `default` when it is unset or empty."""
    return (os.environ.get(WORLD_ENV) or default).lower()


def cell_timeout_s() -> int:
    """`LATENT_GRADIENTS_CELL_TIMEOUT`, in seconds."""
    return int(os.environ.get(CELL_TIMEOUT_ENV) or DEFAULT_CELL_TIMEOUT_S)
