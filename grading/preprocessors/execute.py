"""nbgrader's Execute preprocessor, made to survive what submissions do to their kernel.

nbgrader 0.9 gives up on a whole notebook when its kernel dies or stops answering, so one bad cell would
cost a student every point. `RobustExecute` instead runs the notebook but its graded cells; when the
kernel dies or hangs, it notes the cell that was running, starts a fresh kernel and runs the notebook
again with that cell skipped (an error in its place says why), up to `max_kernel_deaths` times; it gives
a timed-out cell an error naming the limit. Then, in the same kernel, `grading.grader.verdict` calls the
learner's code on this student's hidden inputs and writes each graded cell's outputs itself (the score
nbgrader reads from them); an exercise the static scan flagged gets an `IntegrityViolation` error in each
graded cell. A "Grading notes" cell goes at the top of the notebook, which the feedback shows. Kernels
run in the grading sandbox (`grading/grader/sandbox.py`), whose notes join the grading notes.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors.execute import NotebookClient
from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets import Integer, Unicode

from grading import cell_metadata
from grading.grader import hidden_params, sandbox, verdict
from grading.grader.normalize import exercise_of_cells

NOTES_CELL_ID = "grading-notes"


class KernelUnresponsive(RuntimeError):
    pass


def _error(ename: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=text, traceback=[f"{ename}: {text}"])


def _is_grade(cell: NotebookNode) -> bool:
    return cell_metadata.is_graded(cell)


class RobustExecute(Execute):
    max_kernel_deaths = Integer(6, help="Kernel deaths or hangs tolerated per notebook (each skips one cell).").tag(config=True)
    unresponsive_timeout = Integer(20, help="Seconds an interrupted kernel has to answer before it counts as hung.").tag(config=True)

    reports_directory = Unicode("", help="Where to write reports/runs/<student>.json (events, flags, notes) for the summary.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", sandbox.SandboxedKernelManager)
        super().__init__(**kwargs)

    def _job(self, nb: NotebookNode) -> dict[str, Any]:
        job = dict(nb.metadata.get(cell_metadata.COURSE, {}).get(cell_metadata.GRADING, {}))
        job["exercise_of"] = exercise_of_cells(nb)
        # A note only the batch runner can give (it graded the release in place of an unreadable notebook).
        extra = os.environ.get("GRADING_RUNNER_NOTE")
        job["notes"] = list(job.get("notes", [])) + ([extra] if extra else [])
        return job

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": f"this cell ran longer than the grader's limit of {self.timeout} s per cell and was interrupted",
            "traceback": [f"CellTimeoutError: this cell ran longer than the grader's limit of {self.timeout} s per cell and was interrupted (an infinite loop?)."],
        }
        job = self._job(nb)
        course, student = Path(CourseDirectory(config=self.config).root), (resources or {}).get("nbgrader", {}).get("student", "")
        self._hidden_inputs = lambda: hidden_params.params_for(course, student)
        sandbox.EVENTS.clear()
        original = copy.deepcopy(nb)
        skipped: dict[int, str] = {}
        events: list[dict[str, Any]] = []
        while True:
            self._timed_out: list[int] = []
            self._running: int | None = None
            try:
                nb, resources = self._execute_once(copy.deepcopy(original), resources, skipped)
                break
            except (DeadKernelError, KernelUnresponsive, CellTimeoutError, RuntimeError) as error:
                index = self._running
                if index is None or index in skipped or len(skipped) >= self.max_kernel_deaths:
                    raise
                dead = isinstance(error, DeadKernelError) or "died" in str(error).lower()
                reason = (
                    "the kernel died while running this cell (os._exit, a crash, or running out of memory)"
                    if dead
                    else f"the kernel stopped responding while running this cell (past the {self.timeout} s limit, and an interrupt did not stop it)"
                )
                self.log.warning("Cell %s: %s; re-running the notebook without it", index, reason)
                skipped[index] = reason
                events.append({"event": "kernel_died" if dead else "kernel_hung", "cell": index, "grade_id": _grade_id(original.cells[index])})
        for index in self._timed_out:
            events.append({"event": "timeout", "cell": index, "grade_id": _grade_id(nb.cells[index])})

        flags: dict[str, list[str]] = job.get("flags", {})
        exercise_of: dict[str, str] = job.get("exercise_of", {})
        for cell in nb.cells:
            gid = _grade_id(cell)
            exercise = exercise_of.get(gid or "")
            reasons = flags.get(exercise or "") or flags.get("*")
            if _is_grade(cell) and cell.cell_type == "code" and reasons:
                if not any(o.get("ename") == "IntegrityViolation" for o in cell.get("outputs", [])):
                    cell.outputs.append(_error("IntegrityViolation", f"no credit for {exercise}: " + "; ".join(reasons)))
        notes = job.get("notes", []) + list(dict.fromkeys(sandbox.EVENTS)) + _blocked_writes(nb)
        nb.cells.insert(0, self._notes_cell(notes, skipped, nb, flags, events))
        student = (resources or {}).get("nbgrader", {}).get("student")
        if self.reports_directory and student:
            runs = os.path.join(self.reports_directory, "runs")
            os.makedirs(runs, exist_ok=True)
            with open(os.path.join(runs, f"{student}.json"), "w", encoding="utf-8") as file:
                json.dump({"events": events, "flags": flags, "notes": notes, "review": job.get("review", {})}, file, indent=1)
        return nb, resources

    def _notes_cell(self, notes: list[str], skipped: dict[int, str], nb: NotebookNode, flags: dict, events: list) -> NotebookNode:
        lines = [f"- {note}" for note in notes]
        for index, reason in sorted(skipped.items()):
            lines.append(f"- Cell {index} (`{_grade_id(nb.cells[index]) or 'unnamed'}`): {reason}; the grader skipped it and ran the rest in a fresh kernel.")
        for event in events:
            if event["event"] == "timeout":
                lines.append(f"- Cell {event['cell']} (`{event['grade_id'] or 'unnamed'}`) ran past the {self.timeout} s limit per cell and was interrupted.")
        for exercise, reasons in sorted(flags.items()):
            lines.append(f"- **Integrity, no credit for {'every exercise' if exercise == '*' else exercise}**: your code " + "; ".join(reasons) + ".")
        text = "## Grading notes\n\n" + ("\n".join(lines) if lines else "Nothing to report: every cell ran normally.")
        cell = nbformat.v4.new_markdown_cell(text, id=NOTES_CELL_ID)
        return cell

    def _execute_once(self, nb: NotebookNode, resources: Any, skipped: dict[int, str]) -> tuple[NotebookNode, Any]:
        NotebookClient.__init__(self, nb, None)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        with self.setup_kernel():
            assert self.kc
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            assert info_msg
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                self._running = index
                if index in skipped:
                    cell.outputs = [_error("KernelDied" if "died" in skipped[index] else "KernelUnresponsive", skipped[index] + "; the grader skipped it.")]
                    continue
                if _is_grade(cell):  # scored by the grader's calls below, never by what the kernel shows
                    continue
                self.preprocess_cell(cell, resources, index)
                if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
                    self._timed_out.append(index)
                    self._ensure_responsive()
            self._running = None
            verdict.grade_cells(self.nb, self._hidden_inputs, verdict.KernelChannel(self._scratch(), self._call_kernel()))
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _scratch(self) -> Path:
        """The kernel's scratch folder, which the kernel can read and write (the provisioner made it)."""
        scratch = getattr(getattr(self.km, "provisioner", None), "scratch", None)
        return Path(scratch) if scratch is not None else Path(tempfile.mkdtemp(prefix="latent-gradients-calls-"))

    def _call_kernel(self) -> Callable[[str], bool]:
        """`execute(line)` for the grader's calls: silent (no IPython event hooks run, nothing is shown), within the
        per-cell limit; False, for this call and every later one, once the kernel died or stopped answering."""
        state = {"alive": True}

        def execute(line: str) -> bool:
            if not state["alive"]:
                return False
            assert self.kc is not None
            try:
                reply = self.wait_for_reply(self.kc.execute(line, silent=True, store_history=False, allow_stdin=False))
                if reply is None:  # past the limit: interrupted, and it must answer soon
                    self._ensure_responsive()
                    return False
                return reply["content"].get("status") == "ok"
            except Exception:  # noqa: BLE001 (a dead or hung kernel, whatever the client raises: no answer)
                state["alive"] = False
                return False

        return execute

    def _ensure_responsive(self) -> None:
        """After an interrupt, the kernel must answer a trivial request soon, or it counts as hung."""
        assert self.kc is not None
        msg_id = self.kc.execute("pass", store_history=False)
        saved = self.timeout
        self.timeout = self.unresponsive_timeout
        try:
            reply = self.wait_for_reply(msg_id)
        except Exception as error:  # noqa: BLE001 (whatever the client raises, the kernel did not answer in time)
            raise KernelUnresponsive(str(error)) from None
        finally:
            self.timeout = saved
        if reply is None:
            raise KernelUnresponsive("no reply after an interrupt")


def _blocked_writes(nb: NotebookNode) -> list[str]:
    """A note when the sandbox refused a write (the kernel's file system is read-only outside its scratch)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and "Read-only file system" in str(output.get("evalue", "")):
                return ["Your code tried to write outside its scratch folder; the sandbox blocked it (the file system is read-only there)."]
    return []


def _grade_id(cell: NotebookNode) -> str | None:
    return cell_metadata.grade_id(cell)
