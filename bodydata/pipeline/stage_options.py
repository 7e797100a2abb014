"""Typed stage options: one dataclass per built-in stage, checked with the matching CLI option's type and range.

A pipeline step's ``options`` mapping is parsed into its stage's options class (:func:`parse_options`) before
anything runs, so ``identities: eight`` or ``identities: -3`` stops ``bodydata run`` at once with the same
message the CLI gives for ``--identities eight``. A field's ``metadata["type"]`` is the click parameter type of the
CLI option it mirrors (``tests/pipeline/test_stage_options.py`` checks that they agree); a field without one is
checked against its annotation. Stages without a class here (``convert``, third-party stages) are checked
against their factory's signature (:func:`check_signature`).
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import click

from bodydata.dataset.split import SPLIT_METHODS, SplitError, check_test_subjects
from bodydata.errors import BodydataError
from bodydata.evaluate.solvers import DEFAULT_JACOBIAN_EVERY, DEFAULT_STEPS, JACOBIAN_EVERY_HELP, SOLVERS
from bodydata.neutral.neutralize import METHODS as NEUTRAL_METHODS

__all__ = ["OptionsError", "option", "parse_options", "check_signature", "options_class", "SynthOptions",
           "ScanOptions", "NeutralizeOptions", "DatasetOptions", "MeshStatsOptions", "TrainOptions", "EvaluateOptions",
           "OPTIONS_CLASSES"]

SYNTH_TOPOLOGIES = ("notoes", "notoes_collapse10pc", "anny")


class OptionsError(BodydataError, ValueError):
    """A stage option has an unknown name, a wrong type or a value out of range."""


def option(default: Any, type: click.ParamType | None = None, help: str = "") -> Any:
    """A dataclass field whose value is converted and checked with the click ``type`` (as on the command line)."""
    return field(default=default, metadata={"type": type, "help": help})


# ------------------------------------------------------------------------------------------------- the classes
@dataclass(frozen=True)
class SynthOptions:
    """``synth`` (as ``bodydata synth anny``)."""

    identities: int = option(20, click.IntRange(min=1), "number of identities")
    poses: int = option(10, click.IntRange(min=1), "posed bodies per identity")
    seed: int = option(0, click.IntRange(min=0), "random seed")
    topology: str = option("notoes", click.Choice(SYNTH_TOPOLOGIES), "main mesh connectivity")
    also_topology: list[str] | None = option(None, click.Choice([*SYNTH_TOPOLOGIES, "subdiv"]),
                                             "other connectivities to write (a list)")


@dataclass(frozen=True)
class ScanOptions:
    """``sources-scan`` (as ``bodydata sources scan``)."""

    source: str = option(None, click.STRING, "adapter name")
    root: str | None = option(None, click.STRING, "dataset folder (default: the previous step's output)")
    adapter_options: dict | None = option(None, None, "adapter options (folder: landmarks, units, up_axis, subject_regex)")


@dataclass(frozen=True)
class NeutralizeOptions:
    """``neutralize`` (as ``bodydata neutralize``)."""

    template: str = option("anny", click.STRING, "template name or folder")
    target: str = option("anny", click.STRING, "'anny', 'scape' or a mesh file")
    manifest: str | None = option(None, click.STRING, "source manifest (default: the previous step's sources.csv)")
    spring_dir: str | None = option(None, click.STRING, "SPRING release_model folder for target scape")
    png: bool = option(True, click.BOOL, "before/after PNG per subject")
    method: str = option("auto", click.Choice(list(NEUTRAL_METHODS)),
                         "neutral method: auto (body on anny templates, else arap), arap or body")


@dataclass(frozen=True)
class DatasetOptions:
    """``build-dataset`` (as ``bodydata build-dataset``)."""

    template: str = option("anny", click.STRING, "template name or folder")
    split: str = option("subject", click.Choice(SPLIT_METHODS), "paper or subject")
    test_neutral: int = option(2, click.IntRange(min=0), "neutral test pairs")
    test_pose: int = option(20, click.IntRange(min=0), "pose test pairs")
    test_subjects: str | None = option(None, click.STRING, "subject split: regular expression of the test identities")
    seed: int = option(0, click.INT, "seed of the split")
    sources_step: str | None = option(None, click.STRING, "step whose sources.csv holds the pose meshes")
    neutral_step: str | None = option(None, click.STRING, "neutralize step whose neutrals pair with them")

    def __post_init__(self) -> None:
        try:
            check_test_subjects(self.split, self.test_subjects)
        except SplitError as exc:
            raise OptionsError(f"option test_subjects: {exc}") from None


@dataclass(frozen=True)
class MeshStatsOptions:
    """``mesh-stats``."""

    input: str | None = option(None, click.STRING, "folder of meshes (default: the previous step's output)")
    pattern: str | None = option(None, click.STRING, "glob below it")
    expected_vertices: int | None = option(None, click.IntRange(min=1), "vertex count every mesh must have")


@dataclass(frozen=True)
class TrainOptions:
    """``train`` (as ``bodydata train``)."""

    arch: str | None = option(None, click.STRING, "dhnn, baseline, meshvae, pca (default: the config's, else dhnn)")
    config: str | None = option(None, click.STRING, "YAML config file")
    epochs: int | None = option(None, click.IntRange(min=1), "total epochs")
    threads: int = option(0, click.IntRange(min=0), "CPU threads for torch (0: torch's default)")
    checkpoint_every: int = option(1, click.IntRange(min=1), "epochs between checkpoints")
    dataset_step: str | None = option(None, click.STRING, "build-dataset step whose dataset to train on")


@dataclass(frozen=True)
class EvaluateOptions:
    """``evaluate`` (as ``bodydata evaluate``)."""

    iterations: int | None = option(None, click.IntRange(min=0),
                                    f"Eq. 15 steps at most per mesh (default: the solver's, {DEFAULT_STEPS['lm']} LM / "
                                    f"{DEFAULT_STEPS['adam']} Adam)")
    solver: str = option("lm", click.Choice(list(SOLVERS)), "Eq. 15's optimiser: Levenberg-Marquardt or Adam")
    jacobian_every: int = option(DEFAULT_JACOBIAN_EVERY, click.IntRange(min=1), JACOBIAN_EVERY_HELP)
    figures: bool = option(True, click.BOOL, "CED curves and error maps")
    body_model: bool = option(True, click.BOOL, "the row of anny itself fitted to the same meshes (anny templates)")
    train_step: str | None = option(None, click.STRING, "train step whose run to evaluate")
    dataset_step: str | None = option(None, click.STRING, "build-dataset step whose test split to use")


#: Built-in stage name -> its options class.
OPTIONS_CLASSES: dict[str, type] = {
    "synth": SynthOptions,
    "sources-scan": ScanOptions,
    "neutralize": NeutralizeOptions,
    "build-dataset": DatasetOptions,
    "mesh-stats": MeshStatsOptions,
    "train": TrainOptions,
    "evaluate": EvaluateOptions,
}


def options_class(stage: str) -> type | None:
    """The options class of a built-in stage, or None."""
    return OPTIONS_CLASSES.get(stage)


# ------------------------------------------------------------------------------------------------- checking
def _matches(value: Any, tp: Any) -> bool:
    """True when ``value`` (parsed YAML) fits the annotation ``tp``."""
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is list or origin is list or tp is tuple or origin is tuple:
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(_matches(v, args[0]) for v in value))
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return True  # an annotation this checker does not model


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _convert(name: str, value: Any, tp: Any, ptype: click.ParamType | None) -> Any:
    if not _matches(value, tp) and not (ptype is not None and isinstance(value, str) and tp is not str):
        raise OptionsError(f"option {name}: expected {_type_name(tp)}, got {value!r}")
    if ptype is None or value is None:
        return value
    items = value if isinstance(value, (list, tuple)) else None
    try:
        if items is not None:
            return [ptype.convert(v, None, None) for v in items]
        out = ptype.convert(value, None, None)
    except click.BadParameter as exc:
        raise OptionsError(f"option {name}: {exc.message}") from None
    if not _matches(out, tp):
        raise OptionsError(f"option {name}: expected {_type_name(tp)}, got {value!r}")
    return out


def parse_options(cls: type, raw: Mapping[str, Any]) -> Any:
    """An instance of the options dataclass ``cls`` from a step's ``options`` mapping.

    Every value is checked against its field's annotation and converted with the field's click type (so a
    number given as text is accepted as on the command line). Raises :class:`OptionsError` (one line: the option,
    what was expected, what was given) for an unknown name, a missing required value, a wrong type or range.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise OptionsError(f"unknown option(s) {', '.join(map(str, unknown))} (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name not in raw:
            if f.default is None and not _matches(None, hints[name]):
                raise OptionsError(f"option {name} is required")
            continue
        values[name] = _convert(name, raw[name], hints[name], f.metadata.get("type"))
    return cls(**values)


def check_signature(factory: Callable[..., Any], raw: Mapping[str, Any]) -> None:
    """Check ``raw`` against a stage factory's keyword parameters: names, required ones, annotated types."""
    sig = inspect.signature(factory)
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = sorted(set(raw) - set(params))
    if unknown:
        raise OptionsError(f"unknown option(s) {', '.join(map(str, unknown))} (known: {', '.join(params)})")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in raw]
    if missing:
        raise OptionsError(f"option(s) {', '.join(missing)} required")
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # annotations a third-party module cannot evaluate: names were checked
        return
    for name, value in raw.items():
        if name in hints and not _matches(value, hints[name]):
            raise OptionsError(f"option {name}: expected {_type_name(hints[name])}, got {value!r}")
