"""Train/test splits of the pairs: the paper's (random neutral and pose test pairs) and by subject (disjoint identities).

Both are seeded (``numpy.random.default_rng(seed)``) and depend only on the pairs' ids, roles and
identities, not on their order. The subject split can also be told which identities to test (``test_subjects``, a
regular expression matched against the whole identity key, e.g. ``faust/[67]``): a fixed protocol such as "train on
FAUST subjects 0-5, test on 6-7"; the test counts are then not used.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from bodydata.errors import BodydataError
from bodydata.naming import natural_key

__all__ = ["SPLIT_METHODS", "SplitError", "check_test_subjects", "paper_split", "subject_split", "make_split"]

SPLIT_METHODS = ("paper", "subject")
TRAIN, TEST = "train", "test"


class SplitError(BodydataError, ValueError):
    """The requested split is impossible with these pairs (too few of a role, a single identity)."""


def check_test_subjects(method: str, test_subjects: str | None) -> re.Pattern | None:
    """The compiled ``test_subjects`` pattern (None when not given). Raises :class:`SplitError` when it is not a
    regular expression or the split method does not choose test subjects (only ``"subject"`` does)."""
    if test_subjects is None:
        return None
    if method != "subject":
        raise SplitError("test subjects are chosen by the subject split (--split subject), not the paper's")
    try:
        return re.compile(test_subjects)
    except re.error as exc:
        raise SplitError(f"test subjects {test_subjects!r}: not a regular expression ({exc})") from None


def _canonical_order(ids: Sequence[str]) -> np.ndarray:
    """Indices that sort ``ids`` naturally: the random draws must not depend on the input order."""
    return np.array(sorted(range(len(ids)), key=lambda i: natural_key(ids[i])), dtype=np.int64)


def paper_split(ids: Sequence[str], roles: Sequence[str], n_test_neutral: int, n_test_pose: int,
                seed: int = 0) -> np.ndarray:
    """Paper §6: ``n_test_neutral`` neutral pairs and ``n_test_pose`` pose pairs drawn at random form the test set.

    Returns (P,) str array of ``"train"``/``"test"``. An identity may appear in both sets (as in the paper).
    """
    roles_a = np.asarray(roles)
    out = np.full(len(roles_a), TRAIN, dtype=object)
    rng = np.random.default_rng(seed)
    order = _canonical_order(ids)
    for role, n in (("neutral", n_test_neutral), ("pose", n_test_pose)):
        pool = order[roles_a[order] == role]
        if n < 0:
            raise SplitError(f"test {role} count must be >= 0, got {n}")
        if n > len(pool):
            raise SplitError(f"paper split: {n} {role} test pairs requested but only {len(pool)} {role} pairs exist")
        if n >= len(pool) and len(pool):
            raise SplitError(f"paper split: {n} {role} test pairs would leave no {role} pair for training")
        out[rng.choice(pool, size=n, replace=False)] = TEST
    return out.astype(str)


def subject_split(ids: Sequence[str], roles: Sequence[str], identities: Sequence[str], n_test_neutral: int,
                  n_test_pose: int, seed: int = 0, test_subjects: str | None = None) -> np.ndarray:
    """Split by identity: identities, in a seeded random order, go to the test set until it holds at least
    ``n_test_neutral`` neutral pairs and ``n_test_pose`` pose pairs; no identity is in both sets. With
    ``test_subjects`` (a regular expression), exactly the identities whose whole key matches it are the test set.

    Returns (P,) str array of ``"train"``/``"test"``. Raises :class:`SplitError` when that would leave the
    training set without an identity, or ``test_subjects`` matches no identity.
    """
    roles_a = np.asarray(roles)
    ident_a = np.asarray(identities)
    names = sorted(set(ident_a.tolist()), key=natural_key)
    if len(names) < 2:
        raise SplitError(f"subject split needs at least 2 identities, got {len(names)}")
    pattern = check_test_subjects("subject", test_subjects)
    if pattern is not None:
        test = sorted(n for n in names if pattern.fullmatch(n))
        if not test:
            raise SplitError(f"test subjects {test_subjects!r} match none of the {len(names)} identities "
                             f"(e.g. {', '.join(names[:3])})")
        if len(test) == len(names):
            raise SplitError(f"test subjects {test_subjects!r} match all {len(names)} identities: none left to train")
        return np.where(np.isin(ident_a, test), TEST, TRAIN).astype(str)
    rng = np.random.default_rng(seed)
    test: set[str] = set()
    n_neu = n_pose = 0
    for k in rng.permutation(len(names)):
        if n_neu >= n_test_neutral and n_pose >= n_test_pose:
            break
        sel = ident_a == names[k]
        test.add(names[k])
        n_neu += int(np.sum(sel & (roles_a == "neutral")))
        n_pose += int(np.sum(sel & (roles_a == "pose")))
    if len(test) == len(names):
        raise SplitError(f"subject split: reaching {n_test_neutral} neutral and {n_test_pose} pose test pairs "
                         f"takes all {len(names)} identities; ask for fewer test pairs")
    if n_neu < n_test_neutral or n_pose < n_test_pose:  # pragma: no cover - the loop above only stops early on success
        raise SplitError("subject split: not enough pairs for the requested test counts")
    return np.where(np.isin(ident_a, sorted(test)), TEST, TRAIN).astype(str)


def make_split(method: str, ids: Sequence[str], roles: Sequence[str], identities: Sequence[str],
               n_test_neutral: int, n_test_pose: int, seed: int = 0, test_subjects: str | None = None) -> np.ndarray:
    """Dispatch on ``method`` (``"paper"`` or ``"subject"``); ``test_subjects`` only with ``"subject"``."""
    if method == "paper":
        check_test_subjects(method, test_subjects)
        return paper_split(ids, roles, n_test_neutral, n_test_pose, seed)
    if method == "subject":
        return subject_split(ids, roles, identities, n_test_neutral, n_test_pose, seed, test_subjects)
    raise SplitError(f"unknown split method {method!r} (expected one of {', '.join(SPLIT_METHODS)})")
