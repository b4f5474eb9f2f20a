"""nbgrader's Execute preprocessor, made to survive what submissions do to their kernel.

nbgrader 0.9 gives up on a whole notebook when its kernel dies or stops answering, so one bad cell would
cost a student every point. `RobustExecute` instead runs the notebook but its graded cells; when the
kernel dies or hangs, it notes the cell that was running, starts a fresh kernel and runs the notebook
again with that cell skipped (an error in its place says why), up to `max_kernel_deaths` times; it gives
a timed-out cell an error naming the limit. Then, in the same kernel, `grading.grader.verdict` calls the
learner's code on this student's hidden inputs and writes each graded cell's outputs itself (the score
nbgrader reads from them); an exercise the static scan flagged gets an `IntegrityViolation` error in each
graded cell. Kernels run in the grading sandbox (`grading/grader/sandbox.py`). The kernels' deaths, hangs
and timeouts, the sandbox's notes and the verdicts go into the grading record (`grading/grader/record.py`).
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors.execute import NotebookClient
from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets import Integer

from grading import cell_metadata
from grading.grader import hidden_params, sandbox, verdict
from grading.grader.normalize import exercise_of_cells
from grading.grader.record import record_of
from part_utils.settings import CACHE_ENV


class KernelUnresponsive(RuntimeError):
    pass


def _error(ename: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=text, traceback=[f"{ename}: {text}"])


class RobustExecute(Execute):
    max_kernel_deaths = Integer(6, help="Kernel deaths or hangs tolerated per notebook (each skips one cell).").tag(config=True)
    unresponsive_timeout = Integer(20, help="Seconds an interrupted kernel has to answer before it counts as hung.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", sandbox.SandboxedKernelManager)
        super().__init__(**kwargs)

    def create_kernel_manager(self) -> Any:
        """nbclient's, kept: after each run, its provisioner says what the sandbox did to the kernel."""
        km = super().create_kernel_manager()
        self._kernel_managers.append(km)
        return km

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": f"this cell ran longer than the grader's limit of {self.timeout} s per cell and was interrupted",
            "traceback": [f"CellTimeoutError: this cell ran longer than the grader's limit of {self.timeout} s per cell and was interrupted (an infinite loop?)."],
        }
        resources = resources if resources is not None else {}
        record = record_of(resources)
        course = Path(CourseDirectory(config=self.config).root)
        self._hidden_inputs = lambda: hidden_params.params_for(course, record.student)
        self._kernel_env = dict(os.environ, **({CACHE_ENV: record.kernel_cache} if record.kernel_cache else {}))
        self._kernel_managers: list[Any] = []
        original = copy.deepcopy(nb)
        skipped: dict[int, str] = {}
        try:
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
                    gid = cell_metadata.grade_id(original.cells[index])
                    record.events.append({"event": "kernel_died" if dead else "kernel_hung", "cell": index, "grade_id": gid,
                                          "note": f"Cell {index} (`{gid or 'unnamed'}`): {reason}; the grader skipped it and ran the rest in a fresh kernel."})
        finally:
            for manager in self._kernel_managers:
                record.sandbox_notes += getattr(manager.provisioner, "events", [])
        for index in self._timed_out:
            gid = cell_metadata.grade_id(nb.cells[index])
            record.events.append({"event": "timeout", "cell": index, "grade_id": gid,
                                  "note": f"Cell {index} (`{gid or 'unnamed'}`) ran past the {self.timeout} s limit per cell and was interrupted."})

        exercise_of = exercise_of_cells(nb)
        for cell in nb.cells:
            exercise = exercise_of.get(cell_metadata.grade_id(cell) or "")
            reasons = record.flags.get(exercise or "") or record.flags.get("*")
            if cell_metadata.is_graded(cell) and cell.cell_type == "code" and reasons:
                if not any(o.get("ename") == "IntegrityViolation" for o in cell.get("outputs", [])):
                    cell.outputs.append(_error("IntegrityViolation", f"no credit for {exercise}: " + "; ".join(reasons)))
        record.output_notes += _blocked_writes(nb)
        return nb, resources

    def _execute_once(self, nb: NotebookNode, resources: Any, skipped: dict[int, str]) -> tuple[NotebookNode, Any]:
        NotebookClient.__init__(self, nb, None)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        with self.setup_kernel(env=self._kernel_env):
            assert self.kc
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            assert info_msg
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                self._running = index
                if index in skipped:
                    cell.outputs = [_error("KernelDied" if "died" in skipped[index] else "KernelUnresponsive", skipped[index] + "; the grader skipped it.")]
                    continue
                if cell_metadata.is_graded(cell):  # scored by the grader's calls below, never by what the kernel shows
                    continue
                self.preprocess_cell(cell, resources, index)
                if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
                    self._timed_out.append(index)
                    self._ensure_responsive()
            self._running = None
            record_of(resources).verdicts.update(verdict.grade_cells(self.nb, self._hidden_inputs, verdict.KernelChannel(self._scratch(), self._call_kernel())))
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
