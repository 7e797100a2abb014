"""YAML pipeline files: stages in order with their options, the stage registry, and the resumable pipeline runner.

A pipeline file (schema in docs/pipeline.md)::

    pipeline: anny-demo                 # name (default: the file's stem)
    description: ...                    # optional
    workdir: bodydata-runs/anny-demo    # optional; relative to the current directory
    stages:
      - name: synth                     # step name = its output folder under workdir (unique)
        stage: synth                    # registry name or "package.module:factory" (default: name)
        input: null                     # step whose output this one reads (default: the previous step)
        options: {count: 100, seed: 0}  # passed to the factory; ${VAR} and ${VAR:-default} are expanded

The registry maps a stage name to ``"module:callable"``; the callable takes the step's options as keyword
arguments and returns a :class:`~bodydata.pipeline.stage.Stage`. Other packages can add stages through the
``bodydata.stages`` entry-point group or :func:`register_stage`.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_write_text
from bodydata.pipeline.orchestrate import LazyExecutor, StageSummary, run_stage
from bodydata.pipeline.stage import Stage, StageContext

__all__ = [
    "STAGES",
    "PipelineError",
    "Step",
    "Pipeline",
    "register_stage",
    "stage_names",
    "resolve_stage",
    "load_pipeline",
    "find_pipeline",
    "builtin_pipelines_dir",
    "run_pipeline",
    "check_step_options",
    "stage_summary",
]

# name -> "module:factory". The lead wires each stage here as it lands (see docs/pipeline.md).
STAGES: dict[str, str] = {
    "mesh-stats": "bodydata.pipeline.meshstats:make_stage",
    "synth": "bodydata.pipeline.stage_synth:make_stage",
    "sources-scan": "bodydata.pipeline.stage_scan:make_stage",
    "convert": "bodydata.pipeline.stage_convert:make_stage",
    "neutralize": "bodydata.pipeline.stage_neutralize:make_stage",
    "build-dataset": "bodydata.pipeline.stage_dataset:make_stage",
    "train": "bodydata.pipeline.stage_train:make_stage",
    "evaluate": "bodydata.pipeline.stage_evaluate:make_stage",
}
ENTRY_POINT_GROUP = "bodydata.stages"
STEP_KEYS = {"name", "stage", "input", "options", "description"}
PIPELINE_KEYS = {"pipeline", "description", "workdir", "stages"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class PipelineError(BodydataError):
    """A pipeline file is invalid, names an unknown stage, or a step cannot run."""


@dataclass(frozen=True)
class Step:
    """One step of a pipeline: a stage with its options, writing into ``workdir / name``."""

    name: str
    stage: str
    options: Mapping[str, Any] = field(default_factory=dict)
    input: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    workdir: str | None = None
    path: str | None = None

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise PipelineError(f"pipeline {self.name}: no step named {name!r} (steps: {', '.join(s.name for s in self.steps)})")


# ---------------------------------------------------------------------------------------------------------------
# Registry


def register_stage(name: str, target: str) -> None:
    """Add or replace a stage: ``target`` is ``"package.module:factory"``."""
    if ":" not in target:
        raise PipelineError(f"stage {name}: target {target!r} must look like 'package.module:factory'")
    STAGES[name] = target


def _entry_point_stages() -> dict[str, str]:
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken third-party distribution must not break the runner
        return {}


def stage_names() -> dict[str, str]:
    """All known stages: the built-in registry plus entry points (the registry wins on a clash)."""
    return {**_entry_point_stages(), **STAGES}


def resolve_stage(ref: str) -> Callable[..., Stage]:
    """The factory for a registry name or a ``"module:callable"`` path."""
    known = stage_names()
    target = known.get(ref, ref if ":" in ref else None)
    if target is None:
        raise PipelineError(f"unknown stage {ref!r} (known: {', '.join(sorted(known)) or 'none'}; "
                            "or give 'package.module:factory')")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(f"stage {ref!r}: cannot import {module_name} ({exc})") from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise PipelineError(f"stage {ref!r}: {module_name} has no attribute {attr!r}") from None
    if not callable(factory):
        raise PipelineError(f"stage {ref!r}: {target} is not callable")
    return factory


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise PipelineError(f"{where}: environment variable {var} is not set (used as ${{{var}}})")

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, where) for k, v in value.items()}
    return value


def builtin_pipelines_dir() -> Path:
    """The ``pipelines/`` folder shipped next to the package (repository checkout / editable install)."""
    return Path(__file__).resolve().parents[2] / "pipelines"


def find_pipeline(ref: str | os.PathLike) -> Path:
    """A pipeline file path, or the name of a shipped one (``anny-demo`` -> ``pipelines/anny-demo.yaml``)."""
    p = Path(ref)
    if p.is_file():
        return p
    for candidate in (builtin_pipelines_dir() / f"{ref}.yaml", builtin_pipelines_dir() / f"{ref}.yml"):
        if candidate.is_file():
            return candidate
    shipped = sorted(q.stem for q in builtin_pipelines_dir().glob("*.yaml"))
    raise PipelineError(f"{ref}: no such pipeline file (shipped pipelines: {', '.join(shipped) or 'none'})")


def load_pipeline(path: str | os.PathLike, expand_env: bool = True) -> Pipeline:
    """Parse and validate a pipeline file (unknown keys, duplicate or dangling step names are errors).

    Stage names are not resolved here (:func:`resolve_stage` does that when a step runs), so a file can be checked
    before every stage it names is installed.
    """
    from bodydata.yamlfile import read_yaml_mapping

    path = Path(path)
    doc = read_yaml_mapping(path, PipelineError, "a pipeline file is a mapping with a 'stages' list")
    unknown = set(doc) - PIPELINE_KEYS
    if unknown:
        raise PipelineError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(sorted(PIPELINE_KEYS))})")
    raw_steps = doc.get("stages")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise PipelineError(f"{path}: 'stages' must be a non-empty list")
    steps: list[Step] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_steps):
        where = f"{path}: stages[{i}]"
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict):
            raise PipelineError(f"{where}: a step is a mapping (name, stage, input, options)")
        bad = set(raw) - STEP_KEYS
        if bad:
            raise PipelineError(f"{where}: unknown key(s) {', '.join(sorted(map(str, bad)))} (allowed: {', '.join(sorted(STEP_KEYS))})")
        name = raw.get("name") or raw.get("stage")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise PipelineError(f"{where}: 'name' must be a folder-safe name (letters, digits, . _ -), got {name!r}")
        if name in names:
            raise PipelineError(f"{where}: step name {name!r} is used twice")
        options = raw.get("options") or {}
        if not isinstance(options, dict):
            raise PipelineError(f"{where} ({name}): 'options' must be a mapping")
        if expand_env:
            options = _expand(options, f"{where} ({name})")
        inp = raw["input"] if "input" in raw else (steps[-1].name if steps else None)
        if inp is not None and inp not in names:
            raise PipelineError(f"{where} ({name}): input {inp!r} is not an earlier step")
        steps.append(Step(name=name, stage=str(raw.get("stage") or name), options=options, input=inp,
                          description=str(raw.get("description") or "")))
        names.add(name)
    workdir = doc.get("workdir")
    if workdir is not None and expand_env:
        workdir = _expand(str(workdir), f"{path}: workdir")
    return Pipeline(
        name=str(doc.get("pipeline") or path.stem),
        steps=tuple(steps),
        description=str(doc.get("description") or ""),
        workdir=None if workdir is None else str(workdir),
        path=str(path),
    )


# ---------------------------------------------------------------------------------------------------------------
# Running


def check_step_options(step: Step, factory: Callable[..., Stage] | None = None) -> dict[str, Any]:
    """The step's options, checked (and converted as on the command line) against its stage's options class
    (:mod:`bodydata.pipeline.stage_options`) or, for a stage without one, its factory's signature.

    Raises :class:`PipelineError` naming the step, the option and the reason.
    """
    from bodydata.pipeline.stage_options import OptionsError, check_signature, options_class, parse_options

    factory = factory or resolve_stage(step.stage)
    cls = options_class(step.stage)
    try:
        if cls is None:
            check_signature(factory, step.options)
            return dict(step.options)
        parsed = parse_options(cls, step.options)
    except OptionsError as exc:
        raise PipelineError(f"step {step.name} (stage {step.stage}): {exc}") from None
    return {k: getattr(parsed, k) for k in step.options}


def stage_summary(name: str) -> str:
    """What a registered stage does: the first line of its factory's docstring, without the ``name``: prefix."""
    import inspect

    try:
        doc = inspect.getdoc(resolve_stage(name)) or ""
    except PipelineError as exc:
        return f"(unavailable: {exc})"
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    return re.sub(rf"^``{re.escape(name)}``:\s*", "", line).replace("``", "")


def build_stage(step: Step) -> Stage:
    """Call the step's factory with its checked options; the stage's hashed options default to the step's options."""
    factory = resolve_stage(step.stage)
    options = check_step_options(step, factory)
    try:
        stage = factory(**options)
    except TypeError as exc:
        raise PipelineError(f"step {step.name} (stage {step.stage}): bad options ({exc})") from None
    if not isinstance(stage, Stage):
        raise PipelineError(f"step {step.name}: factory of stage {step.stage!r} returned {type(stage).__name__}, not a Stage")
    if not stage.options and step.options:
        stage = dataclasses.replace(stage, options=dict(step.options))
    return stage


def select_steps(pipeline: Pipeline, from_step: str | None = None, only: str | None = None) -> list[Step]:
    """The steps to run: all, those from ``from_step`` on, or just ``only``."""
    if from_step and only:
        raise PipelineError("give either --from or --only, not both")
    names = [s.name for s in pipeline.steps]
    if only:
        pipeline.step(only)
        return [pipeline.step(only)]
    if from_step:
        pipeline.step(from_step)
        return list(pipeline.steps[names.index(from_step):])
    return list(pipeline.steps)


def run_pipeline(
    pipeline: Pipeline,
    workdir: str | os.PathLike | None = None,
    *,
    from_step: str | None = None,
    only: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    host: str = "127.0.0.1",
    dashboard: str | None = None,
    retries: int = 2,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> list[StageSummary]:
    """Run the selected steps in order on one executor; return each step's summary.

    Each step writes into ``workdir / step.name`` and skips items that are already done with unchanged inputs, so
    running the same pipeline again resumes it. Steps before the selected ones must have run (their folders are
    the selected steps' inputs). Failed items never stop a step; a step whose items all failed is the end of its
    branch (steps reading it, directly or through others, are not run and say so); a step whose item listing fails
    (a missing data folder, say) stops the pipeline with a :class:`PipelineError`.
    """
    say = echo or (lambda s: None)
    # Absolute, so that paths a step records for later steps stay valid whatever folder they are read from.
    root = Path(workdir or pipeline.workdir or Path("bodydata-runs") / pipeline.name).resolve()
    steps = select_steps(pipeline, from_step, only)
    stages = [(s, build_stage(s)) for s in steps]  # resolve everything before starting a cluster
    root.mkdir(parents=True, exist_ok=True)
    resolved = {
        "pipeline": pipeline.name,
        "file": pipeline.path,
        "workdir": str(root.resolve()),
        "stages": [{"name": s.name, "stage": s.stage, "input": s.input, "options": dict(s.options)} for s in pipeline.steps],
    }
    atomic_write_text(root / "pipeline.json", json.dumps(resolved, indent=2, default=str) + "\n")

    summaries: list[StageSummary] = []
    upstream = {s.name: root / s.name for s in pipeline.steps}
    selected = {s.name for s in steps}
    for s in pipeline.steps:
        if s.name in selected:
            break
        if not (root / s.name / "manifest.csv").exists():
            raise PipelineError(f"step {s.name} has not run yet in {root} (its output is an input of the steps you chose)")

    say(f"pipeline {pipeline.name}: {len(steps)} step(s) in {root}")
    blocked: set[str] = set()  # steps with no usable output: every item failed, or not run for that reason
    with LazyExecutor(scheduler, workers, threads=threads, host=host, dashboard=dashboard,
                      on_open=lambda d: say(f"started {d}")) as executor:
        for step, stage in stages:
            if step.input in blocked:
                # Its input has nothing done: running it would only report a missing file instead of the cause.
                say(f"{step.name}: not run (every item of its input step {step.input} failed)")
                blocked.add(step.name)
                continue
            names = [p.name for p in pipeline.steps]
            before = {n: upstream[n] for n in names[: names.index(step.name)]}
            ctx = StageContext(out_dir=root / step.name, upstream=before,
                               input_dir=None if step.input is None else upstream[step.input])
            try:
                summary = run_stage(stage, ctx, executor, retries=retries, progress=progress)
            except BodydataError as exc:
                raise PipelineError(f"step {step.name} (stage {step.stage}): {exc}") from None
            summaries.append(summary)
            say(f"{step.name}: {summary.line()} ({summary.total} items, {summary.seconds:.1f} s) -> "
                f"{ctx.out_dir / 'manifest.csv'}")
            for item, reason in summary.failures[:5]:
                say(f"  failed {item}: {reason}")
            if summary.failed > 5:
                say(f"  ... and {summary.failed - 5} more (status=failed rows of the manifest)")
            if summary.failed and not summary.done and not summary.skipped:
                blocked.add(step.name)
    return summaries
