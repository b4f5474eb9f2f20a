"""How many learners a workshop server holds: figures for the capacity table in docs/workshop.md (run by hand, not a test).

    python scripts/workshop_load.py kernel            # one learner kernel's memory, toy and GPT-2-shaped worlds
    sudo python scripts/workshop_load.py load -n 4    # N learners at once through a real `make workshop`
    sudo python scripts/workshop_load.py board -n 200 # N learners' check events on the board (workshop/board/)

`kernel`: the solutions notebook run top to bottom, and every learner check on the GPT-2-shaped random world,
each in a fresh kernel; prints its peak and final resident memory. `load`: N learners (accounts lt-01 ...,
removed at the end) log in, start their servers and press Validate at the same moment; prints each one's time,
whether it passed, and the peak memory of all their processes together. `board`: N simulated learners, each
with a hub token and no server, send their check events (one in ten resent) while the instructor's session
loads the board every second; prints the events the board's database counted against those sent, and the
slowest and median page loads and hub answers. docs/workshop.md describes each in full.
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
        _wait_for_hub(base, process, work / "workshop.log")
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
        _stop_workshop(process, [*names, "lt-teacher"], work)


def _wait_for_hub(base: str, process: subprocess.Popen, log: Path) -> None:
    while True:
        try:
            urllib.request.urlopen(f"{base}/hub/api/", timeout=5)
            return
        except OSError:
            if process.poll() is not None:
                sys.exit(f"make workshop exited: see {log}")
            time.sleep(1)


def _stop_workshop(process: subprocess.Popen, accounts: list[str], work: Path) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the hub stops every learner's server, then the proxy and the board
    process.wait(timeout=120)
    time.sleep(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a hub stuck in its shutdown
    for name in accounts:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def board_load(learners: int, events: int, window_s: float, port: int) -> None:
    import random
    import sqlite3
    import statistics
    import uuid

    import requests

    if os.geteuid() != 0:
        sys.exit("The board's load test starts `make workshop`, which creates Linux accounts: run it as root.")
    work = Path(tempfile.mkdtemp(prefix="latent-gradients-board-"))
    os.chmod(work, 0o755)
    roster = work / "roster.csv"
    teacher, accounts = "bl-teacher", ["bl-teacher", "bl-learner"]
    with roster.open("w", newline="") as file:
        csv.writer(file).writerows([("username", "role", "name"), (teacher, "instructor", "Load Test"), ("bl-learner", "learner", "Learner")])
    log_path = work / "workshop.log"
    make = ["make", "-o", ".venv/.installed", "workshop", f"ROSTER={roster}", f"WORKSHOP_DIR={work / 'state'}", f"WORKSHOP_PORT={port}"]
    with log_path.open("w") as log:
        process = subprocess.Popen(make, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    board = f"{base}/services/board/"
    try:
        _wait_for_hub(base, process, log_path)
        with (work / "state" / "passwords.csv").open(newline="") as file:
            password = {row["username"]: row["password"] for row in csv.DictReader(file)}[teacher]
        instructor = requests.Session()
        instructor.get(f"{base}/hub/login").raise_for_status()
        xsrf = next(c.value for c in instructor.cookies if c.name == "_xsrf")
        instructor.post(f"{base}/hub/login", data={"username": teacher, "password": password, "_xsrf": xsrf}, allow_redirects=False).raise_for_status()
        instructor.get(f"{base}/hub/home").raise_for_status()
        # The hub's XSRF token is bound to the session: the one it set after the login.
        xsrf = [c.value for c in instructor.cookies if c.name == "_xsrf" and c.path.rstrip("/") == "/hub"][-1]
        admin = instructor.post(f"{base}/hub/api/users/{teacher}/tokens", headers={"X-XSRFToken": xsrf}, json={"note": "board load test"})
        admin.raise_for_status()
        hub = {"Authorization": f"token {admin.json()['token']}"}
        names = [f"bl-{i:03d}" for i in range(1, learners + 1)]
        requests.post(f"{base}/hub/api/users", headers=hub, json={"usernames": names}).raise_for_status()
        tokens = {name: requests.post(f"{base}/hub/api/users/{name}/tokens", headers=hub, json={"note": "a learner's server"}).json()["token"] for name in names}
        for _ in range(60):  # the board imports the checks' catalogue (torch) when the hub starts it
            if instructor.get(board, timeout=30).status_code == 200:  # the instructor's OAuth, as a browser does
                break
            time.sleep(2)
        from tests.exercises import EXERCISES
        from tests.hints import HINTS

        sent: dict[str, set[str]] = {}
        failures: list[str] = []

        def learner_sends(name: str) -> None:
            rng = random.Random(name)  # seeded: the same run every time
            session = requests.Session()
            session.headers["Authorization"] = f"token {tokens[name]}"
            ids = sent.setdefault(name, set())
            start = time.monotonic()
            for i in range(events):
                time.sleep(max(0.0, start + (i + rng.random()) * window_s / events - time.monotonic()))
                exercise = rng.choice(EXERCISES)
                passed = rng.random() < 0.4
                event = {"id": uuid.uuid4().hex, "exercise": exercise.name, "check": exercise.check.__name__, "part": "all", "passed": passed,
                         "duration_s": round(rng.uniform(0.05, 3), 3), "hint": None if passed else rng.choice(HINTS).id}  # fmt: skip
                for _ in range(2 if rng.random() < 0.1 else 1):  # one in ten resent
                    response = session.post(f"{board}api/events", json=event, timeout=30)
                    if response.status_code not in (200, 201):
                        failures.append(f"{name}: {response.status_code} {response.text[:200]}")
                ids.add(event["id"])

        page_times: list[float] = []
        hub_times: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                start = time.perf_counter()
                instructor.get(board, timeout=30).raise_for_status()
                instructor.get(f"{board}api/state", timeout=30).raise_for_status()
                page_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                requests.get(f"{base}/hub/api/users/{teacher}", headers=hub, timeout=30).raise_for_status()
                hub_times.append(time.perf_counter() - start)
                time.sleep(1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(learners) as pool:
            list(pool.map(learner_sends, names))
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
        database = sqlite3.connect(work / "state" / "board" / "board.sqlite")
        stored = database.execute("SELECT count(*), count(DISTINCT learner || id) FROM events").fetchone()
        unique = sum(len(ids) for ids in sent.values())
        print(f"board: {learners} learners x {events} check events in {wall:.0f} s (window {window_s:.0f} s), one in ten resent; "
              f"{os.cpu_count()} CPU cores")  # fmt: skip
        print(f"  events: {unique} sent, {stored[0]} stored ({stored[1]} distinct): {'none lost, none doubled' if stored[0] == stored[1] == unique else 'MISMATCH'}; "
              f"{len(failures)} refused{': ' + failures[0] if failures else ''}")  # fmt: skip
        print(f"  board page + its state, as the instructor: median {statistics.median(page_times):.3f} s, slowest {max(page_times):.3f} s "
              f"({len(page_times)} loads)")  # fmt: skip
        print(f"  hub API: median {statistics.median(hub_times):.3f} s, slowest {max(hub_times):.3f} s ({len(hub_times)} requests)")
    finally:
        _stop_workshop(process, accounts, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("kernel", help="one learner kernel's memory on the toy and the GPT-2-shaped world")
    load = sub.add_parser("load", help="N learners through a real `make workshop` at once (root)")
    load.add_argument("-n", "--learners", type=int, default=4)
    load.add_argument("--port", type=int, default=8600)
    board = sub.add_parser("board", help="N simulated learners' check events on the board (root)")
    board.add_argument("-n", "--learners", type=int, default=200)
    board.add_argument("-e", "--events", type=int, default=30, help="check events per learner")
    board.add_argument("--window", type=float, default=110.0, help="seconds the events are spread over")
    board.add_argument("--port", type=int, default=8650)
    args = parser.parse_args()
    if args.command == "kernel":
        kernel_memory()
    elif args.command == "board":
        board_load(args.learners, args.events, args.window, args.port)
    else:
        load_test(args.learners, args.port)


if __name__ == "__main__":
    main()
