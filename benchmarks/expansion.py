"""A suite's expansion as data: its jobs (config, label, teacher job) and settings. Plain and serialisable, without
the methods or torch, so that reading results (`bench status`, `bench report`) takes a kept expansion as it is
(`benchmarks.suite_cache`); `benchmarks.suite` makes one from a suite file.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdfd.config import RunConfig, build

from .selection import Selection
from .store import TEACHER

if TYPE_CHECKING:  # kdfd.job imports torch: a job is resolved only where it is trained or checked
    from kdfd.job import ResolvedJob


@dataclass(frozen=True)
class Job:
    """One job of a suite: its config (hashed into its id), its label, and the teacher fine-tuning job it starts
    from."""

    config: RunConfig
    label: str  # `method[k=v,...]` for grid points, `teacher` for teacher fine-tuning
    teacher: Job | None = None

    @functools.cached_property
    def id(self) -> str:
        return self.config.hash()

    @functools.cached_property
    def resolved(self) -> ResolvedJob:
        """Its task, method class, typed parameters and needs (`kdfd.job.resolve`), derived once per job, at first
        use: the runner, preflight and the engine take them from here. Imports the method, and torch."""
        from kdfd.job import resolve

        return resolve(self.config)

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "config": dataclasses.asdict(self.config),
                "teacher": self.teacher.id if self.teacher is not None else None}


@dataclass
class Suite:
    """An expanded suite. `methods`: name -> {"version", "scale", "defaults"} of each method its jobs run
    (`kdfd.registry.method_facts`), what a report says of them without importing them."""

    name: str
    path: Path
    description: str
    jobs: list[Job]  # teacher jobs first, then method jobs; no two with the same id
    slurm: dict = dataclasses.field(default_factory=dict)  # the `[slurm]` table: benchmarks.options.SlurmOptions
    select: Selection | None = None  # the `[select]` table: tuning on held-out seeds (benchmarks.selection)
    claims: list[str] | None = None  # the pre-registered family of claims its report tests (benchmarks.verdicts)
    methods: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "description": self.description, "slurm": self.slurm,
                "jobs": [j.to_dict() for j in self.jobs], "methods": self.methods,
                "select": dataclasses.asdict(self.select) if self.select else None, "claims": self.claims}

    @classmethod
    def from_dict(cls, data: dict, path: Path) -> Suite:
        """The suite `to_dict` gave. ValueError when a job's config no longer gives its id (its config was written by
        other code, or changed by hand): its id would name another job's record."""
        jobs: dict[str, Job] = {}
        for entry in data["jobs"]:
            teacher = jobs[entry["teacher"]] if entry["teacher"] is not None else None
            job = Job(build(RunConfig, entry["config"], "a kept expansion's job"), entry["label"], teacher)
            if job.id != entry["id"]:
                raise ValueError(f"job {entry['id']}'s config now gives id {job.id}")
            jobs[job.id] = job
        select = Selection(**data["select"]) if data.get("select") else None
        return cls(data["name"], path, data["description"], list(jobs.values()), data["slurm"], select,
                   data.get("claims"), data["methods"])


def teachers_first(jobs) -> list[Job]:
    """The jobs with the teacher fine-tuning jobs first, each group in its order: a teacher runs before the jobs
    that start from it."""
    return sorted(jobs, key=lambda j: j.config.role != TEACHER)
