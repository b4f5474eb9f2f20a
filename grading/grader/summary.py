"""Grades: nbgrader's CSV, and a per-exercise class summary as a table (Markdown, CSV) and a plotly chart.

Written to nbgrader/reports/: grades.csv (`nbgrader export`), scores.csv (one row per submission,
one column per exercise, with integrity flags and grading events), summary.md and summary.html.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from grading import cell_metadata
from grading.grader import settings
from grading.grader.normalize import exercise_of_cells


def _runtime_integrity(course: Path, student: str, exercise_of: dict[str, str]) -> dict[str, list[str]]:
    """Exercises whose graded cells raised an IntegrityViolation in the kernel (the hidden tests' findings)."""
    path = course / "autograded" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb"
    found: dict[str, list[str]] = {}
    if not path.exists():
        return found
    for cell in nbformat.read(path, as_version=4).cells:
        gid = cell_metadata.grade_id(cell)
        for output in cell.get("outputs", []):
            if output.get("ename") == "IntegrityViolation" and gid in exercise_of:
                found.setdefault(exercise_of[gid], []).append(str(output.get("evalue", ""))[:200])
    return found


def collect(course: Path) -> tuple[list[str], list[dict]]:
    release = nbformat.read(course / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)
    exercise_of = exercise_of_cells(release)
    # In the order the notebook teaches them, which the exercise table (tests/exercises.py) set.
    exercises = list(dict.fromkeys(exercise_of.values()))
    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in sorted(s.id for s in gradebook.students):
            row: dict = {"student": student}
            scores: dict[str, float] = defaultdict(float)
            maxima: dict[str, float] = defaultdict(float)
            try:
                submission = gradebook.find_submission_notebook(settings.NOTEBOOK, settings.ASSIGNMENT, student)
                grades = submission.grades
            except MissingEntry:
                grades = []
                row["events"] = "no submission"
            for grade in grades:
                exercise = exercise_of.get(grade.name)
                if exercise:
                    scores[exercise] += grade.score or 0.0
                    maxima[exercise] += grade.max_score
            for exercise in exercises:
                row[exercise] = scores.get(exercise, 0.0)
            row["total"] = sum(scores.values())
            run = course / "reports" / "runs" / f"{student}.json"
            report = json.loads(run.read_text()) if run.exists() else {}
            flags = {k: list(v) for k, v in report.get("flags", {}).items()}
            for exercise, reasons in _runtime_integrity(course, student, exercise_of).items():
                flags.setdefault(exercise, []).extend(reasons)
            row["integrity"] = "; ".join(f"{k}: {v[0]}" for k, v in sorted(flags.items()))
            row["flagged"] = sorted(flags)
            row["review"] = "; ".join(f"{k}: {v[0]}" for k, v in sorted(report.get("review", {}).items()))
            events = [f"{e['event']} in {e.get('grade_id') or 'cell ' + str(e['cell'])}" for e in report.get("events", [])]
            row["events"] = "; ".join(events + [n[:120] for n in report.get("notes", [])]) or row.get("events", "")
            rows.append(row)
    row_max = {exercise: sum(g.max_score for g in []) for exercise in exercises}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_notebook(settings.NOTEBOOK, settings.ASSIGNMENT)
        for cell in notebook.grade_cells:
            exercise = exercise_of.get(cell.name)
            if exercise:
                row_max[exercise] = row_max.get(exercise, 0) + cell.max_score
    for row in rows:
        row["_max"] = row_max
    return exercises, rows


def class_table(exercises: list[str], rows: list[dict]) -> list[dict]:
    table = []
    n = max(1, len(rows))
    for exercise in exercises:
        maximum = rows[0]["_max"][exercise] if rows else 0
        scores = [row[exercise] for row in rows]
        table.append({
            "exercise": exercise,
            "points": maximum,
            "mean": sum(scores) / n,
            "mean %": 100 * sum(scores) / n / maximum if maximum else 0.0,
            "full marks": sum(1 for s in scores if maximum and s >= maximum),
            "zero": sum(1 for s in scores if s == 0),
            "flagged": sum(1 for row in rows if exercise in row["flagged"] or "*" in row["flagged"]),
        })
    return table


def write_summary(course: Path) -> Path:
    reports = course / "reports"
    reports.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(reports / "grades.csv")], cwd=course, check=True,
                   env=settings.kernel_env(), stdout=subprocess.DEVNULL)
    exercises, rows = collect(course)
    with open(reports / "scores.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["student", *exercises, "total", "integrity", "review", "events"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = class_table(exercises, rows)
    lines = [f"# Class summary: {settings.ASSIGNMENT} ({len(rows)} submissions)", "",
             "| exercise | points | mean | mean % | full marks | zero | flagged |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {t['exercise']} | {t['points']:g} | {t['mean']:.2f} | {t['mean %']:.0f}% | {t['full marks']} | {t['zero']} | {t['flagged']} |" for t in table]
    flagged = [row for row in rows if row["integrity"]]
    if flagged:
        lines += ["", "## Integrity flags", ""] + [f"- **{row['student']}**: {row['integrity']}" for row in flagged]
    review = [row for row in rows if row["review"]]
    if review:
        lines += ["", "## For review (close to a reference solution; evidence, not a verdict)", ""] + [f"- **{row['student']}**: {row['review']}" for row in review]
    (reports / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("Mean score per exercise (% of its points)", "Submissions per exercise"))
    names = [t["exercise"] for t in table]
    figure.add_trace(go.Bar(x=names, y=[t["mean %"] for t in table], name="mean %", text=[f"{t['mean %']:.0f}%" for t in table]), row=1, col=1)
    for key, colour in (("full marks", "seagreen"), ("zero", "indianred"), ("flagged", "black")):
        figure.add_trace(go.Bar(x=names, y=[t[key] for t in table], name=key, marker_color=colour), row=1, col=2)
    figure.update_layout(title=f"{settings.ASSIGNMENT}: {len(rows)} submissions", barmode="group", yaxis_range=[0, 100])
    figure.write_html(reports / "summary.html", include_plotlyjs=True)
    print(f"Wrote {reports / 'grades.csv'}, scores.csv, summary.md and summary.html")
    return reports
