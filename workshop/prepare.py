"""Prepare this machine for `make workshop` (run as root; safe to re-run before every start).

- One Linux account per person in the roster, homes private, in the group `latent-gradients` (the
  instructors also in `latent-gradients-instructors`), each with a FirstUseAuthenticator password written
  once to `<workshop dir>/passwords.csv` (root only); an account that has a password keeps it.
- The repository's grader, `nbgrader/` and `.git` readable by root and the instructors only; the rest
  readable and, for learners, read-only; every folder above the environment's Python traversable.
- The instructor's course directory `~<instructor>/course` (0700) with a gradebook of the roster; the
  exchange `<workshop dir>/exchange`, sticky, with the course's folders, the instructor's (workshop/exchange.py).
- The grader's kernel cache in the repository's build/; WORLD=gpt2: GPT-2 and its SAEs in `<workshop dir>/hf-cache`.
- A sudoers rule that lets the instructor's account run one root launcher, which starts each grading kernel
  as the grading account in its cgroup (grading/grader/root_launcher.py). `--stop` removes it and gives
  the repository's private folders back their groups and modes.

docs/workshop.md describes the day.
"""

from __future__ import annotations

import argparse
import csv
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GROUP = "latent-gradients"
INSTRUCTORS_GROUP = "latent-gradients-instructors"
ASSIGNMENT = "latent_gradients"
# Letters and digits that cannot be mistaken for one another on a printed slip.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479"
PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# Closed to learners: the grader, the instructor's course files, and the history that holds both. grading/kernel/
# stays readable: grading kernels run under an account of their own and import it.
PRIVATE_REPO_PATHS = ("grading/grader", "nbgrader", ".git")
KERNEL_LAUNCHER = Path("/usr/local/libexec/latent-gradients/grading-kernel")
SUDOERS_RULE = Path("/etc/sudoers.d/latent-gradients-workshop")
# What the launcher runs as root: the interpreter, the repository's code it imports and its libraries.
TRUSTED_AS_ROOT = (Path(sys.prefix), Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}", REPO / "grading", REPO / "part_utils")


@dataclass(frozen=True)
class Person:
    username: str
    role: str
    name: str


def read_roster(path: Path) -> list[Person]:
    with path.open(newline="") as file:
        people = [Person(row["username"].strip(), row["role"].strip().lower(), (row.get("name") or "").strip()) for row in csv.DictReader(file)]
    bad = [p.username for p in people if not USERNAME.match(p.username)]
    if bad:
        sys.exit(f"{path}: these usernames are not valid Linux user names (lower case, start with a letter): {bad}")
    roles = {p.role for p in people}
    if roles - {"instructor", "learner"}:
        sys.exit(f"{path}: role must be 'instructor' or 'learner', not {sorted(roles - {'instructor', 'learner'})}")
    if sum(p.role == "instructor" for p in people) != 1:
        sys.exit(f"{path}: name exactly one instructor")
    if len({p.username for p in people}) != len(people):
        sys.exit(f"{path}: a username appears twice")
    return people


def instructor_of(people: list[Person]) -> Person:
    return next(p for p in people if p.role == "instructor")


def run(*command: str) -> None:
    subprocess.run(command, check=True)


def ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        run("groupadd", "--system", name)


def ensure_account(person: Person) -> None:
    groups = [GROUP] + ([INSTRUCTORS_GROUP] if person.role == "instructor" else [])
    try:
        account = pwd.getpwnam(person.username)
    except KeyError:
        run("useradd", "--create-home", "--shell", "/bin/bash", "--groups", ",".join(groups), "--comment", person.name, person.username)
        account = pwd.getpwnam(person.username)
    else:
        # Never take over an account this workshop did not create (a system user, a colleague).
        if person.username not in grp.getgrnam(GROUP).gr_mem:
            sys.exit(f"A Linux account {person.username!r} exists and is not a workshop account: rename them in the roster.")
        run("usermod", "--append", "--groups", ",".join(groups), person.username)
    os.chmod(account.pw_dir, 0o700)


def let_others_reach(path: Path) -> None:
    """Learners' servers run the course environment's Python and import the course from the repository: every
    folder above them must be traversable."""
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, mode | stat.S_IXOTH)  # traverse only: the folder's listing stays private
            print(f"  {folder}: other users may now pass through it (o+x) to reach {path}")


def _private_repo_files() -> list[Path]:
    found = []
    for name in PRIVATE_REPO_PATHS:
        top = REPO / name
        if top.exists() and not top.is_symlink():
            found += [path for path in ([top, *top.rglob("*")] if top.is_dir() else [top]) if not path.is_symlink()]
    return found


def close_to_learners(instructors_gid: int, saved: Path) -> None:
    """Readable by root and the instructors' group (which may not write them), by no one else; what each file
    had before is kept in `saved`, for `--stop`, unless an earlier start kept it already."""
    paths = _private_repo_files()
    if not saved.exists():
        before = {str(path): [path.lstat().st_gid, stat.S_IMODE(path.lstat().st_mode)] for path in paths}
        with os.fdopen(os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            json.dump(before, file)
    for path in paths:
        os.chown(path, -1, instructors_gid)
        mode = path.stat().st_mode
        os.chmod(path, (mode & ~(stat.S_IRWXO | stat.S_IWGRP)) | stat.S_IRGRP | (stat.S_IXGRP if path.is_dir() else 0))
    if REPO.stat().st_mode & stat.S_IWOTH:
        sys.exit(f"{REPO} is writable by every user: the course must be read-only for learners (chmod o-w).")


def reopen_repository(saved: Path) -> None:
    """The owners' groups and modes the private folders had before the first start."""
    if not saved.exists():
        return
    for name, (gid, mode) in json.loads(saved.read_text()).items():
        path = Path(name)
        if path.exists() and not path.is_symlink():
            os.chown(path, -1, gid)
            os.chmod(path, mode)
    saved.unlink()


def grading_account() -> tuple[int, int]:
    """(uid, gid) of the account grading kernels run as, created by the sandbox when missing."""
    code = "from grading.grader.sandbox import grader_account; print(*grader_account())"
    printed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, stdout=subprocess.PIPE, text=True).stdout
    uid, gid = map(int, printed.split()[-2:])
    return uid, gid


def writable_by_others(top: Path) -> list[str]:
    """Paths under `top` (and `top`) that an account other than root could change: not root's, or group- or world-writable."""
    found = []
    for folder, folders, files in os.walk(top):
        for path in [folder, *(os.path.join(folder, name) for name in files + folders)]:
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode) and (info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
                found.append(path)
    return found


def install_kernel_launcher(instructor: Person) -> None:
    """The sudoers rule that lets the instructor's account run the kernel launcher, and nothing else, as root."""
    if shutil.which("visudo") is None or shutil.which("sudo") is None:
        print("  WARNING: no sudo (`apt-get install sudo`): grading kernels will run as the instructor, without cgroup limits.")
        return
    changeable = [path for top in TRUSTED_AS_ROOT for path in writable_by_others(top)] + [
        str(folder) for folder in (REPO, *REPO.parents, *Path(sys.prefix).parents) if folder.stat().st_uid != 0 or folder.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder.stat().st_mode & stat.S_ISVTX
    ]
    if changeable:
        print(f"  WARNING: the kernel launcher would run code other accounts can change ({changeable[:3]}): no sudoers rule; "
              "grading kernels will run as the instructor, without cgroup limits.")  # fmt: skip
        return
    _, gid = grading_account()
    run("usermod", "--append", "--groups", grp.getgrgid(gid).gr_name, instructor.username)
    KERNEL_LAUNCHER.parent.mkdir(parents=True, exist_ok=True)
    launcher = f"#!{sys.executable} -I\nimport sys\nsys.path.insert(0, {str(REPO)!r})\nfrom grading.grader.root_launcher import main\nsys.exit(main())\n"
    _write_root_file(KERNEL_LAUNCHER, launcher, 0o755)
    rule = f"# make workshop (workshop/prepare.py): the instructor's grading kernels, started as root, run as the grading account.\n{instructor.username} ALL=(root) NOPASSWD: {KERNEL_LAUNCHER}\n"
    draft = SUDOERS_RULE.with_name(f".{SUDOERS_RULE.name}.draft")
    _write_root_file(draft, rule, 0o440)
    checked = subprocess.run(["visudo", "--check", "--quiet", "--file", str(draft)], capture_output=True, text=True)
    if checked.returncode != 0:
        draft.unlink()
        sys.exit(f"visudo rejects the kernel launcher's rule: {checked.stderr or checked.stdout}")
    draft.rename(SUDOERS_RULE)


def _write_root_file(path: Path, text: str, mode: int) -> None:
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode), "w") as file:
        file.write(text)
    os.chmod(path, mode)


def remove_kernel_launcher(instructor: Person) -> None:
    SUDOERS_RULE.unlink(missing_ok=True)
    KERNEL_LAUNCHER.unlink(missing_ok=True)
    group = grp.getgrgid(grading_account()[1])
    if instructor.username in group.gr_mem:
        run("gpasswd", "--delete", instructor.username, group.gr_name)


def as_user(username: str, env: dict[str, str], *command: str) -> None:
    account = pwd.getpwnam(username)
    full_env = {"HOME": account.pw_dir, "USER": username, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **env}
    subprocess.run(["runuser", "-u", username, "--", "env", "-i", *(f"{k}={v}" for k, v in full_env.items()), *command],
                   check=True, cwd=account.pw_dir)  # fmt: skip


def prepare_course(instructor: Person, learners: list[Person], workshop_dir: Path) -> None:
    account = pwd.getpwnam(instructor.username)
    course = Path(account.pw_dir) / "course"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "nbgrader" / "source" / ASSIGNMENT, source, dirs_exist_ok=True)
    run("chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(course))
    os.chmod(course, 0o700)
    students = course / ".roster.csv"
    with students.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "first_name", "last_name"])
        for learner in learners:
            first, _, last = learner.name.partition(" ")
            writer.writerow([learner.username, first, last])
    os.chown(students, account.pw_uid, account.pw_gid)
    env = instructor_env(workshop_dir, course)
    nbgrader = (sys.executable, "-m", "nbgrader")
    as_user(instructor.username, env, *nbgrader, "db", "assignment", "add", ASSIGNMENT)
    as_user(instructor.username, env, *nbgrader, "db", "student", "import", str(students))
    # The hidden tests' secret, in the instructor's course only (kept across workshops: grades stay reproducible).
    as_user(instructor.username, env, sys.executable, "-m", "grading", "secret", "--course", str(course))


def course_id() -> str:
    """The course's nbgrader id, from its nbgrader configuration (which imports the course's grading package)."""
    from traitlets.config.loader import PyFileConfigLoader

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "nbgrader")).load_config().CourseDirectory.course_id


# nbgrader's modes for the exchange's course folders (its release and release_feedback create them so): the
# inbound takes submissions (write and pass, no listing; set-group-id), the feedback folder only lets a learner
# reach their own by its name.
EXCHANGE_COURSE_FOLDERS = {".": 0o755, "outbound": 0o755, "inbound": 0o2733, "feedback": 0o711}


def prepare_exchange(exchange: Path, instructor: Person) -> None:
    account = pwd.getpwnam(instructor.username)
    course = exchange / course_id()
    if course.exists() and (course.is_symlink() or course.lstat().st_uid != account.pw_uid):
        print(f"  {course} was not created by this script (owner uid {course.lstat().st_uid}): removed")
        if course.is_symlink() or not course.is_dir():
            course.unlink()
        else:
            shutil.rmtree(course)
    for name, mode in EXCHANGE_COURSE_FOLDERS.items():
        folder = course / name
        folder.mkdir(exist_ok=True)
        os.chown(folder, account.pw_uid, account.pw_gid)
        os.chmod(folder, mode)


def instructor_env(workshop_dir: Path, course: Path) -> dict[str, str]:
    """What the instructor's server and nbgrader commands need to find the course, its config and the exchange."""
    return {
        "JUPYTER_CONFIG_PATH": str(REPO / "workshop" / "instructor"),
        "WORKSHOP_DIR": str(workshop_dir),
        "GRADING_COURSE_DIR": str(course),
        "PYTHONPATH": str(REPO),
    }


def set_passwords(people: list[Person], workshop_dir: Path) -> Path:
    from firstuseauthenticator import FirstUseAuthenticator

    hub = workshop_dir / "hub"
    authenticator = FirstUseAuthenticator(dbm_path=str(hub / "passwords.dbm"), check_passwords_on_startup=False, min_password_length=PASSWORD_LENGTH)
    handout = workshop_dir / "passwords.csv"
    known: dict[str, str] = {}
    if handout.exists():
        with handout.open(newline="") as file:
            known = {row["username"]: row["password"] for row in csv.DictReader(file)}
    import dbm

    with dbm.open(authenticator.dbm_path, "c", 0o600) as db:
        has_password = {key.decode() for key in db}
    for person in people:
        if person.username not in has_password:
            password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
            authenticator.reset_password(person.username, password)
            known[person.username] = password
    with os.fdopen(os.open(handout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["username", "role", "name", "password"])
        for person in people:
            writer.writerow([person.username, person.role, person.name, known.get(person.username, "(changed by its owner)")])
    return handout


def build_kernel_cache() -> None:
    # In a fresh interpreter, as cache_gpt2: this script imports nothing of the course (nor transformers).
    code = "from grading.grader.kernel_cache import build_kernel_cache; print(build_kernel_cache())"
    printed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, stdout=subprocess.PIPE, text=True).stdout
    run("chmod", "-R", "a+rX,go-w", printed.splitlines()[-1])


def cache_gpt2(workshop_dir: Path) -> None:
    cache = workshop_dir / "hf-cache"
    env = {**os.environ, "HF_HOME": str(cache), "PYTHONPATH": str(REPO), "LATENT_GRADIENTS_DEVICE": "cpu"}
    subprocess.run([sys.executable, "-c", "from part_utils.worlds import load_world; load_world('gpt2')"], env=env, check=True)
    run("chmod", "-R", "a+rX,go-w", str(cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roster", type=Path, required=True)
    parser.add_argument("--workshop-dir", type=Path, required=True)
    parser.add_argument("--world", choices=("toy", "gpt2", "random"), default="toy")
    parser.add_argument("--stop", action="store_true", help="undo the kernel launcher's rule and the repository's modes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("make workshop must run as root (sudo make workshop): it creates one Linux account per learner.")
    people = read_roster(args.roster)
    instructor, learners = instructor_of(people), [p for p in people if p.role == "learner"]
    workshop_dir = args.workshop_dir.resolve()
    if args.stop:
        remove_kernel_launcher(instructor)
        reopen_repository(workshop_dir / "repository-modes.json")
        return

    print(f"Preparing the workshop in {workshop_dir} for {instructor.username} (instructor) and {len(learners)} learners")
    for group in (GROUP, INSTRUCTORS_GROUP):
        ensure_group(group)
    for person in people:
        ensure_account(person)
    workshop_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(workshop_dir, 0o755)
    closed = [str(folder) for folder in (workshop_dir, *workshop_dir.parents) if not folder.stat().st_mode & stat.S_IXOTH]
    if closed:
        sys.exit(f"Every account must reach {workshop_dir} (the exchange is there), but {closed} let only their owner in.")
    (workshop_dir / "hub").mkdir(exist_ok=True)
    os.chmod(workshop_dir / "hub", 0o700)
    exchange = workshop_dir / "exchange"
    exchange.mkdir(exist_ok=True)
    os.chmod(exchange, 0o1777)
    prepare_exchange(exchange, instructor)
    let_others_reach(Path(sys.executable))
    let_others_reach(REPO / "part_utils")
    close_to_learners(grp.getgrnam(INSTRUCTORS_GROUP).gr_gid, workshop_dir / "repository-modes.json")
    install_kernel_launcher(instructor)
    prepare_course(instructor, learners, workshop_dir)
    handout = set_passwords(people, workshop_dir)
    build_kernel_cache()
    if args.world == "gpt2":
        cache_gpt2(workshop_dir)
    print(f"Passwords to hand out: {handout} (root only). Learners may change theirs at /hub/auth/change-password.")


if __name__ == "__main__":
    main()
