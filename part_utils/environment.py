"""The environment variables the course reads, named once.

Standard library only, like `part_utils/network.py`: the autograder's nbgrader process and the
scripts that must fail fast import this without loading torch or sae_lens (the package's own
`__init__` imports its submodules lazily for that reason).
"""

# Which world `load_world()` picks when the notebook does not say: auto, gpt2, toy or random.
WORLD_ENV = "LATENT_GRADIENTS_WORLD"
# Set by the autograder in every grading kernel: `load_world()` returns this world, whatever the notebook asks for.
GRADING_WORLD_ENV = "LATENT_GRADIENTS_GRADING_WORLD"
# Forces the device (cpu, cuda, mps) instead of the fastest one found.
DEVICE_ENV = "LATENT_GRADIENTS_DEVICE"
# Where the course keeps what it derives at run time (the tokenizer folder, compiled worlds).
CACHE_ENV = "LATENT_GRADIENTS_CACHE"
# Set by the workshop's hub in a learner's server: where the learner checks send their results (workshop/board/).
BOARD_URL_ENV = "LATENT_GRADIENTS_BOARD_URL"
