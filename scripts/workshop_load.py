"""How many learners a workshop server holds: figures for the capacity table in docs/workshop.md (run by hand, not a test).

    python scripts/workshop_load.py kernel            # one learner kernel's memory, toy and GPT-2-shaped worlds
    sudo python scripts/workshop_load.py load -n 4    # N learners at once through a real `make workshop`

`kernel`: in a fresh process each, (1) the solutions notebook run top to bottom in a real kernel on the toy world
(nbclient, as JupyterLab's Run All), and (2) every learner check of the notebook, passed the reference solutions,
on the GPT-2-shaped random world of scripts/bench_worlds.py (the notebook cannot load that world by name). Prints the
kernel's peak resident memory (VmHWM) and its resident memory at the end (VmRSS).

`load`: starts `make workshop` with N learners (accounts lt-01 ... lt-N, removed at the end), logs each one in
through the hub's login page, starts their server, saves the released notebook with the reference solutions in
their home and presses Validate for all of them at the same moment (nbgrader's Validate runs the whole notebook in a fresh kernel in the
learner's own server). Prints each learner's time to finish, whether it passed, and the peak of the resident
memory of all the learners' processes together (sampled every 0.5 s; other jobs on the machine do not count).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SOLUTIONS = ROOT / "notebooks" / "latent_gradients_solutions.ipynb"
MIB = 2**20

KERNEL_TOY = """
import nbformat, os
from nbclient import NotebookClient
nb = nbformat.read(os.environ["SOLUTIONS"], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("print(open('/proc/self/status').read())"))
NotebookClient(nb, timeout=1200, kernel_name="python3").execute()
print(nb.cells[-1].outputs[0]["text"])
"""
KERNEL_GPT2_SHAPE = """
import torch, tests, solutions
from scripts.bench_worlds import gpt2_shaped_world
world, _ = gpt2_shaped_world(seed=0)
tests.test_sparse_tensor(solutions.SparseTensor)
tests.test_latent_to_latent_gradients(solutions.latent_to_latent_gradients, world.model, world.saes)
tests.test_token_to_latent_gradients(solutions.token_to_latent_gradients, world.model, world.saes)
tests.test_latent_to_logit_gradients(solutions.latent_to_logit_gradients, world.model, world.saes)
tests.test_latent_to_latent_gradients_attn(solutions.latent_to_latent_gradients_attn, world.model, world.attn_saes)
print(open('/proc/self/status').read())
"""


def _status_mib(text: str, field: str) -> float:
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024


def kernel_memory() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOLUTIONS": str(SOLUTIONS), "LATENT_GRADIENTS_DEVICE": "cpu", "TQDM_DISABLE": "1"}
    for name, code, world in (("toy world, solutions notebook (Run All)", KERNEL_TOY, "toy"), ("GPT-2-shaped world, every check", KERNEL_GPT2_SHAPE, "random")):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], env={**env, "LATENT_GRADIENTS_WORLD": world}, capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
        peak, now = _status_mib(result.stdout, "VmHWM"), _status_mib(result.stdout, "VmRSS")
        print(f"{name}: kernel peak {peak:,.0f} MiB, at the end {now:,.0f} MiB ({time.perf_counter() - start:.0f} s)")


def _learners_memory_mib(users: set[str]) -> float:
    """Resident memory of every process the learners' accounts run (servers, kernels): other jobs on the
    machine do not count."""
    import psutil

    total = 0
    for process in psutil.process_iter(["username", "memory_info"]):
        if process.info["username"] in users and process.info["memory_info"] is not None:
            total += process.info["memory_info"].rss
    return total / MIB


def solved_release(work: Path) -> dict:
    """The released notebook with the reference solutions put in: what a learner who finished submits."""
    from course_fixtures import grading_examples as examples
    from grading.grader import settings

    course = work / "course"
    shutil.copytree(ROOT / "nbgrader" / "source", course / "source")
    shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course / "nbgrader_config.py")
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", settings.ASSIGNMENT], cwd=course, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT),  # nbgrader runs alembic by name
                                             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})  # fmt: skip
    return json.loads(examples.build(course)["solutions"][0])  # the notebook's text


class Learner:
    def __init__(self, base: str, name: str, password: str, notebook: dict) -> None:
        import requests

        self.base, self.name, self.password, self.notebook = base, name, password, notebook
        self.session = requests.Session()

    def _xsrf(self, path: str) -> str:
        return next(c.value for c in self.session.cookies if c.name == "_xsrf" and c.path.rstrip("/") == path.rstrip("/"))

    def log_in_and_start(self) -> None:
        self.session.get(f"{self.base}/hub/login").raise_for_status()
        form = {"username": self.name, "password": self.password, "_xsrf": self._xsrf("/hub/")}
        self.session.post(f"{self.base}/hub/login", data=form, allow_redirects=False).raise_for_status()
        headers = {"X-XSRFToken": self._xsrf("/hub/")}
        self.session.post(f"{self.base}/hub/api/users/{self.name}/server", headers=headers)
        while not self.session.get(f"{self.base}/hub/api/users/{self.name}", headers=headers).json()["servers"].get("", {}).get("ready"):
            time.sleep(1)
        self.session.get(f"{self.base}/user/{self.name}/lab").raise_for_status()  # the server's OAuth: its own cookie
        notebook = {"type": "notebook", "format": "json", "content": self.notebook}
        self._api("PUT", "api/contents/latent_gradients.ipynb", data=json.dumps(notebook))

    def _api(self, method: str, path: str, **kwargs):
        headers = {"X-XSRFToken": self._xsrf(f"/user/{self.name}/")}
        response = self.session.request(method, f"{self.base}/user/{self.name}/{path}", headers=headers, timeout=3600, **kwargs)
        response.raise_for_status()
        return response

    def validate(self) -> tuple[float, bool, str]:
        start = time.perf_counter()
        result = self._api("POST", "assignments/validate", data={"path": "latent_gradients.ipynb"}).json()
        text = json.dumps(result)
        # nbgrader's answer lists the failed and changed cells; none at all is JupyterLab's "Success!".
        return time.perf_counter() - start, result.get("success") is True and not result.get("value"), text[:300]


def load_test(learners: int, port: int) -> None:
    if os.geteuid() != 0:
        sys.exit("The load test creates one Linux account per simulated learner: run it as root.")
    names = [f"lt-{i:02d}" for i in range(1, learners + 1)]
    work = Path(tempfile.mkdtemp(prefix="latent-gradients-load-"))
    os.chmod(work, 0o755)
    roster = work / "roster.csv"
    with roster.open("w", newline="") as file:
        csv.writer(file).writerows([("username", "role", "name"), ("lt-teacher", "instructor", "Load Test"), *((n, "learner", n) for n in names)])
    log = (work / "workshop.log").open("w")
    make = ["make", "-o", ".venv/.installed", "workshop", f"ROSTER={roster}", f"WORKSHOP_DIR={work / 'state'}", f"WORKSHOP_PORT={port}"]
    process = subprocess.Popen(make, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/hub/api/", timeout=5)
                break
            except OSError:
                if process.poll() is not None:
                    sys.exit(f"make workshop exited: see {work / 'workshop.log'}")
                time.sleep(1)
        with (work / "state" / "passwords.csv").open(newline="") as file:
            passwords = {row["username"]: row["password"] for row in csv.DictReader(file)}
        users = set(names)
        notebook = solved_release(work)
        people = [Learner(base, name, passwords[name], notebook) for name in names]
        start = time.perf_counter()
        with ThreadPoolExecutor(learners) as pool:
            list(pool.map(Learner.log_in_and_start, people))
        servers_up = time.perf_counter() - start
        with_servers = _learners_memory_mib(users)
        peak, done = with_servers, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _learners_memory_mib(users))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(learners) as pool:
            results = list(pool.map(Learner.validate, people))
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        print(f"{learners} learners, {os.cpu_count()} CPU cores: {learners} servers started and logged in in {servers_up:.0f} s, "
              f"{with_servers:,.0f} MiB for the idle servers")  # fmt: skip
        for name, (seconds, passed, text) in zip(names, results):
            print(f"  {name}: Validate (the whole notebook, solved) {seconds:.0f} s, {'passed' if passed else 'FAILED: ' + text}")
        print(f"all {learners} finished in {wall:.0f} s; the learners' processes peaked at {peak:,.0f} MiB resident "
              f"({peak / learners:,.0f} MiB per learner)")  # fmt: skip
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the hub stops every learner's server, then the proxy
        process.wait(timeout=120)
        time.sleep(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a hub stuck in its shutdown
        for name in (*names, "lt-teacher"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("kernel", help="one learner kernel's memory on the toy and the GPT-2-shaped world")
    load = sub.add_parser("load", help="N learners through a real `make workshop` at once (root)")
    load.add_argument("-n", "--learners", type=int, default=4)
    load.add_argument("--port", type=int, default=8600)
    args = parser.parse_args()
    if args.command == "kernel":
        kernel_memory()
    else:
        load_test(args.learners, args.port)


if __name__ == "__main__":
    main()
