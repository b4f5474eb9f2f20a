"""The maintainer's tools, each run as `python scripts/NAME.py` (several through `make`): the benchmarks
(`bench`, `bench_grading`, `workshop_load`, `first_check`, with `flops` and `bench_worlds`), the GPU check
(`device_check`), the toy world's training (`train_toy_world`) and the GPT-2 figures' check (`verify_gpt2`)."""
