"""What the report computes from fine-tuned scores: how much of the teacher a student keeps."""

from __future__ import annotations


def _ratio(student: float, twin: float, teacher: float) -> float | None:
    return None if teacher == twin else (student - twin) / (teacher - twin)


def student_retention(student: dict, twin: dict, teacher: dict, tasks: list[str]) -> dict:
    """What a student keeps of what the teacher knows beyond its random-init twin, (student - twin) /
    (teacher - twin), per task and on the average (1 = the teacher's score, 0 = no better than random
    initialisation; None where the teacher is no better than the twin), with its exact cost as a fraction
    of the teacher's."""
    per_task = {t: _ratio(student["scores"][t]["score"], twin["scores"][t]["score"], teacher["scores"][t]["score"])
                for t in tasks}
    frac = lambda key: (None if not student.get(key) or not teacher.get(key)  # noqa: E731
                        else student[key] / teacher[key])
    return {"tasks": per_task, "glue_avg": _ratio(student["glue_avg"], twin["glue_avg"], teacher["glue_avg"]),
            "gflops_exact_frac": frac("gflops_exact"), "params_exact_frac": frac("params_exact")}
