"""Synthetic anny bodies with ground truth: sampled phenotypes, perturbed key poses, checks, deterministic files.

Output layout of ``bodydata synth anny --out DIR`` (``<id>`` = ``anny00000``, ``anny00001``, ...;
``<stem>`` = ``<pose_name>_<jjj>``, ``jjj`` the pose index 000, 001, ... within the identity)::

    DIR/synth.json                     arguments, anny/bodydata versions, seed, topology, vertex and face
                                       counts, bone labels, DOF names, key pose names, phenotype
                                       distribution, rejection counts (no timestamps: runs are byte-identical)
    DIR/identities.csv                 identity,sex,age_years,gender,age,muscle,weight,height,proportions,stature_m
    DIR/meshes/<id>/<stem>.ply         posed bodies in the main topology (binary PLY, float64, z-up, metres)
    DIR/neutral/<id>.ply               the identity's true neutral body: anny's reference pose (every pose
                                       parameter identity; an A-pose), same topology
    DIR/truth/<id>/<stem>.json         ground truth of one posed mesh: identity, phenotype, pose name and
                                       index, the anatomical joint angles (degrees, see generator/poses.py) and the
                                       anny ``local-ref`` pose parameters (one rotation vector per bone,
                                       radians, in ``synth.json`` bone order), checks (intersecting faces,
                                       edge stretch, attempts)
    DIR/<topo>/meshes/<id>/<stem>.ply  the same bodies in another connectivity <topo> (e.g. ``anny``, the
    DIR/<topo>/neutral/<id>.ply        13,718-vertex default topology, or ``subdiv``), when requested
    DIR/subdiv/map.npz                 for ``subdiv``: face_ids (n,) int64 + barycentrics (n, 3) float64 into
                                       the main topology's faces (also stored: faces, source_faces), so
                                       subdiv body = barycentrics-weighted corners of the main body, exactly.
                                       ``subdiv`` = midpoint subdivision of the main topology with every
                                       vertex moved at random inside an incident triangle (fixed seed, so
                                       all runs share it): a different connectivity with a known map
    DIR/contact_sheet.png              front views of up to 24 bodies (when requested)

Phenotype distribution (:class:`PhenotypeDistribution`, adults; anny phenotype values in [0, 1]):

* sex male/female with probability 1/2; ``gender = u`` (male) or ``1 - u`` (female), ``u ~ U(0, gender_spread)``;
* age in years ``~ U(min_age, max_age)``, turned into anny's ``age`` by anny's own morphological-age
  mapping (piecewise linear; 18 y -> 0.77, 64 y -> 0.83);
* height ``~ Beta(a, b)`` of anny's WHO-calibrated conditional height distribution for that sex at that
  age (``anny/data/shape_calibration``);
* muscle, weight ``~ Beta(2, 2)``; proportions ``~ U(0, 1)``. (anny's own calibrated muscle and weight
  Betas are U-shaped, i.e. mostly extreme bodies, so they are not used.)

Poses: key pose ``(offset_i + j) mod L`` of the library (:mod:`bodydata.generator.poses`, ``L`` key
poses, ``offset_i`` drawn per identity), perturbed by Gaussian noise inside joint limits. anny places
the root bone's head (the pelvis) at the origin; there is no global translation, and the only global
rotation is the key pose's (and jitter's) ``pelvis`` DOFs.

Determinism: identity ``i`` draws from ``SeedSequence([seed, 0, i])``, its pose offset from
``[seed, 2, i]``, pose ``j`` attempt ``t`` from ``[seed, 1, i, j, t]``, so a run with more identities or
more poses reproduces the earlier files byte for byte.

Plausibility (a body failing a check is resampled, up to ``max_attempts``, then the unperturbed key
pose is used; counts go to ``synth.json``): bone lengths (head of each bone to its parent's head) equal
to the neutral's within 1e-6 m; the 99.9th percentile over mesh edges of the length change factor
``max(l/l0, l0/l)`` against the neutral at most ``max_edge_stretch`` (4; key poses reach 1.0-2.9,
since creases squash a few edges a lot; an exploded limb stretches many edges many times); at most
``max_intersect_fraction`` (2.5 %) of the triangles intersect another triangle (anny's Warp
self-intersection test, which ignores triangle pairs influenced by a common bone; skin contact such as
crossed arms gives ~1.7 %).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from bodydata.device import pick_device
from bodydata.errors import BodydataError
from bodydata.fsutil import atomic_write_text
from bodydata.generator import layout
from bodydata.generator import poses as pose_library
from bodydata.generator.layout import identity_name, pose_stem
from bodydata.mesh.rotations import rotation_vectors
from bodydata.mesh.subdivision import BarycentricRemesh, jittered_subdivision
from bodydata.mesh.topology import edges

#: Our topology names -> anny topology names.
TOPOLOGIES: dict[str, str] = {
    "notoes": "notoes",
    "notoes_collapse10pc": "notoes_collapse10pc",
    "anny": "anny",
}
#: Derived connectivities: built from the main topology with a known barycentric map back to it.
REMESHES = ("subdiv",)
PHENOTYPE_KEYS = ("gender", "age", "muscle", "weight", "height", "proportions")
#: Fixed seed of the ``subdiv`` connectivity, so every run (any --seed) shares it.
SUBDIV_SEED = 20260


class SynthError(BodydataError, ValueError):
    """Bad generator arguments or a generator failure."""


@dataclass(frozen=True)
class PhenotypeDistribution:
    """Documented distribution of adult phenotypes (see the module docstring)."""

    min_age: float = 18.0
    max_age: float = 75.0
    gender_spread: float = 0.15
    muscle_beta: tuple[float, float] = (2.0, 2.0)
    weight_beta: tuple[float, float] = (2.0, 2.0)
    proportions_range: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class Phenotype:
    """One identity's anny phenotype (values in [0, 1]) plus the sampled sex and age in years."""

    sex: str
    age_years: float
    gender: float
    age: float
    muscle: float
    weight: float
    height: float
    proportions: float

    def values(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in PHENOTYPE_KEYS}


@dataclass
class SynthBody:
    """One posed body.

    vertices : (n, 3) float64 in the main topology; ``extra`` maps another topology to its (n', 3) float64.
    angles : (n_dofs,) float64 degrees (order of ``pose_library.dof_keys()``).
    rotvecs : (n_bones, 3) float64 anny ``local-ref`` rotation vectors (radians).
    """

    identity: str
    pose_name: str
    pose_index: int
    angles: np.ndarray
    rotvecs: np.ndarray
    vertices: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attempts: int = 1
    intersecting_faces: int = -1
    edge_stretch: float = 1.0  # 99.9th percentile over edges of max(l/l0, l0/l) vs the neutral
    fallback: bool = False

    @property
    def stem(self) -> str:
        return pose_stem(self.pose_name, self.pose_index)


@dataclass
class SynthIdentity:
    """One identity: id, phenotype, neutral (reference pose) vertices (n, 3) float64 per topology, bodies."""

    identity: str
    index: int
    phenotype: Phenotype
    neutral: dict[str, np.ndarray]
    bodies: list[SynthBody]
    rejected: int = 0


@dataclass
class SynthSummary:
    """What a run wrote and how long it took."""

    out_dir: Path
    n_identities: int
    n_bodies: int
    n_rejected: int
    n_fallback: int
    seconds: float
    sheet: Path | None = None


def _first_use_notice() -> None:
    """Say so before anny builds its model cache: on a fresh machine that is ~1.1-1.6 GB and minutes of silence."""
    import sys

    from anny.paths import get_anny_cache_path

    cache = get_anny_cache_path()
    if not cache.is_dir() or not any(cache.iterdir()):
        print(f"anny: first use on this machine: building its model cache in {cache} (about 1.1-1.6 GB, a few "
              "minutes on 2 cores; once only; set ANNY_CACHE_DIR to put it elsewhere)", file=sys.stderr, flush=True)


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in key])))


def _load_calibration() -> dict:
    """anny's WHO-calibrated shape distribution anchors, as numpy (per sex)."""
    import torch
    from anny.paths import get_anny_root_dir

    out = {}
    for sex, fname in (("male", "boys.pth"), ("female", "girls.pth")):
        path = get_anny_root_dir() / "data" / "shape_calibration" / fname
        sd = torch.load(path, weights_only=True, map_location="cpu")
        out[sex] = {
            "age_map": (
                sd["morphological_age_mapping"]["morphological_age_anchors"].double().numpy(),
                sd["morphological_age_mapping"]["anny_age_anchors"].double().numpy(),
            ),
            "height": tuple(sd["conditional_height_distribution"][k].double().numpy()
                            for k in ("age_anchors", "alpha_anchors", "beta_anchors")),
        }
    return out


def sample_phenotype(
    seed: int, index: int, distribution: PhenotypeDistribution, calibration: dict
) -> Phenotype:
    """The phenotype of identity ``index``: a pure function of ``(seed, index)`` and the distribution."""
    d = distribution
    rng = _rng(seed, 0, index)
    draws = rng.random(4)
    sex = "male" if draws[0] < 0.5 else "female"
    u = draws[1] * d.gender_spread
    gender = u if sex == "male" else 1.0 - u
    age_years = d.min_age + draws[2] * (d.max_age - d.min_age)
    morph, anny_age = calibration[sex]["age_map"]
    age = float(np.interp(age_years, morph, anny_age))
    ages, alphas, betas = calibration[sex]["height"]
    # np.interp clamps outside the anchors, as anny does (adult heights use the last anchor).
    height = float(rng.beta(np.interp(age, ages, alphas), np.interp(age, ages, betas)))
    muscle = float(rng.beta(*d.muscle_beta))
    weight = float(rng.beta(*d.weight_beta))
    lo, hi = d.proportions_range
    proportions = float(lo + draws[3] * (hi - lo))
    return Phenotype(sex, float(age_years), float(gender), age, muscle, weight, height, proportions)


class AnnySynth:
    """Builds the anny model(s) once, then samples, poses (batched), checks and writes bodies.

    topology : main topology (key of :data:`TOPOLOGIES`); ``extra_topologies``: more topologies in
    which the same bodies are also produced (same phenotype and pose parameters; anny's rigs share
    their bone list across topologies, which is checked).
    """

    def __init__(
        self,
        topology: str = "notoes",
        extra_topologies: Sequence[str] = (),
        distribution: PhenotypeDistribution = PhenotypeDistribution(),
        jitter: float = 1.0,
        pose_names: Sequence[str] | None = None,
        max_attempts: int = 10,
        max_intersect_fraction: float = 0.025,
        max_edge_stretch: float = 4.0,
        check_intersections: bool = True,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        if topology not in TOPOLOGIES:
            raise SynthError(f"unknown topology {topology!r}; choose from {', '.join(TOPOLOGIES)}")
        for t in extra_topologies:
            if t not in TOPOLOGIES and t not in REMESHES:
                raise SynthError(f"unknown topology {t!r}; choose from {', '.join((*TOPOLOGIES, *REMESHES))}")
        if topology in extra_topologies:
            raise SynthError(f"extra topology {topology!r} is the main topology")
        names = tuple(pose_names) if pose_names else pose_library.POSE_NAMES
        unknown = [n for n in names if n not in pose_library.KEY_POSES]
        if unknown:
            raise SynthError(f"unknown pose names {unknown}; known: {', '.join(pose_library.POSE_NAMES)}")
        if jitter < 0 or max_attempts < 1 or batch_size < 1:
            raise SynthError("jitter must be >= 0, max_attempts and batch_size >= 1")
        import torch

        import anny

        self.torch = torch
        self.device = pick_device(device)
        self.topology = topology
        self.extra_topologies = tuple(extra_topologies)
        self.distribution = distribution
        self.jitter = float(jitter)
        self.pose_names = names
        self.max_attempts = int(max_attempts)
        self.max_intersect_fraction = float(max_intersect_fraction)
        self.max_edge_stretch = float(max_edge_stretch)
        self.batch_size = int(batch_size)
        self.anny_version = getattr(anny, "__version__", "unknown")
        self.models = {}
        _first_use_notice()
        for t in (topology, *[x for x in self.extra_topologies if x not in REMESHES]):
            model = anny.Anny(topology=TOPOLOGIES[t]).to(self.device)
            model.requires_grad_(False)
            self.models[t] = model
        main = self.models[topology]
        self.bone_labels = list(main.bone_labels)
        for t, model in self.models.items():
            if list(model.bone_labels) != self.bone_labels:
                raise SynthError(f"anny topology {t!r} has a different bone list; cannot share poses")
            if list(model.phenotype_labels) != list(PHENOTYPE_KEYS):
                raise SynthError(f"anny model phenotype labels {model.phenotype_labels} are not {PHENOTYPE_KEYS}")
        self.faces = {t: m.faces.detach().cpu().numpy().astype(np.int64) for t, m in self.models.items()}
        self.calibration = _load_calibration()
        with torch.no_grad():
            ref = main()
        # Axes of the anatomical DOFs come from the average body's reference pose, so the pose
        # parameters of a key pose do not depend on the identity.
        self.rig = pose_library.PoseRig.from_reference(self.bone_labels, ref["bone_poses"][0, :, :3, 3].cpu().numpy())
        self.remeshes: dict[str, BarycentricRemesh] = {}
        if "subdiv" in self.extra_topologies:
            self.remeshes["subdiv"] = jittered_subdivision(
                self.faces[topology], int(main.template_vertices.shape[0]), _rng(SUBDIV_SEED, 3), topology,
                reference_vertices=self._extreme_bodies(),
            )
            self.faces["subdiv"] = self.remeshes["subdiv"].faces
        self.bone_parents = np.asarray(main.bone_parents, dtype=np.int64)
        self.edges = edges(self.faces[topology])
        self.collision = None
        if check_intersections:
            try:
                from anny.utils.collision import SelfInterpenetrationModule

                self.collision = SelfInterpenetrationModule(main)
            except Exception as exc:  # warp missing or failing: run without the check, say so
                import warnings

                warnings.warn(f"self-intersection check disabled: {exc}")
        self.key_vectors = {n: pose_library.key_pose_vector(n) for n in self.pose_names}

    def _extreme_bodies(self) -> np.ndarray:
        """(9, n, 3) float64: the average body and the 8 corners of (gender, weight, height) at the
        reference pose, on which the ``subdiv`` map is checked for inverted triangles."""
        torch = self.torch
        model = self.models[self.topology]
        corners = [[0.5] * 6] + [
            [g, 0.8, 0.5, w, h, 0.5] for g in (0.0, 1.0) for w in (0.0, 1.0) for h in (0.0, 1.0)
        ]
        pheno = torch.tensor(corners, dtype=model.dtype, device=self.device)
        with torch.no_grad():
            return model(phenotype_kwargs=pheno)["vertices"].cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ sampling
    def phenotype(self, seed: int, index: int) -> Phenotype:
        return sample_phenotype(seed, index, self.distribution, self.calibration)

    def pose_name(self, seed: int, index: int, j: int) -> str:
        offset = int(_rng(seed, 2, index).integers(len(self.pose_names)))
        return self.pose_names[(offset + j) % len(self.pose_names)]

    def pose_angles(self, seed: int, index: int, j: int, attempt: int) -> np.ndarray:
        """(n_dofs,) float64 degrees for pose ``j`` of identity ``index``, attempt ``attempt``."""
        key = self.key_vectors[self.pose_name(seed, index, j)]
        return pose_library.perturb(key, _rng(seed, 1, index, j, attempt), self.jitter)

    # ------------------------------------------------------------------ forward pass
    def forward(self, phenotype: Phenotype, angles: np.ndarray, topology: str | None = None) -> dict[str, np.ndarray]:
        """Pose one identity: ``angles`` (B, n_dofs) degrees -> 'vertices' (B, n, 3) and 'bone_heads'
        (B, n_bones, 3) float64 numpy. ``angles`` may be None for the reference pose (B = 1)."""
        torch = self.torch
        model = self.models[topology or self.topology]
        pheno = torch.tensor([[phenotype.values()[k] for k in PHENOTYPE_KEYS]], dtype=model.dtype, device=self.device)
        if angles is None:
            params = None
        else:
            params = torch.from_numpy(self.rig.pose_parameters(angles)).to(device=self.device, dtype=model.dtype)
        with torch.no_grad():
            out = model(pose_parameters=params, phenotype_kwargs=pheno)
        return {
            "vertices": out["vertices"].detach().cpu().numpy().astype(np.float64),
            "bone_heads": out["bone_poses"][..., :3, 3].detach().cpu().numpy().astype(np.float64),
        }

    # ------------------------------------------------------------------ checks
    def _bone_lengths(self, heads: np.ndarray) -> np.ndarray:
        """(B, n_bones - 1) distances from each non-root bone head to its parent's head."""
        return np.linalg.norm(heads[:, 1:] - heads[:, self.bone_parents[1:]], axis=-1)

    def check(self, vertices: np.ndarray, heads: np.ndarray, neutral_vertices: np.ndarray,
              neutral_heads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plausibility of a batch: (ok (B,) bool, intersecting faces (B,) int64, edge stretch (B,) float64)."""
        b = vertices.shape[0]
        lengths = self._bone_lengths(heads)
        ref_lengths = self._bone_lengths(neutral_heads[None])
        bones_ok = np.all(np.abs(lengths - ref_lengths) < 1e-6, axis=1)
        e = self.edges
        ref = np.linalg.norm(neutral_vertices[e[:, 1]] - neutral_vertices[e[:, 0]], axis=-1)
        cur = np.linalg.norm(vertices[:, e[:, 1]] - vertices[:, e[:, 0]], axis=-1)
        ratio = cur / np.maximum(ref, 1e-12)
        # Skinning legitimately squashes the edges of flexion creases (elbow, groin: single edges
        # shrink to ~5 %), so the check reads a high percentile, not the extreme: an exploded limb
        # stretches hundreds of edges many times over.
        factor = np.maximum(ratio, 1.0 / np.maximum(ratio, 1e-12))
        stretch = np.percentile(factor, 99.9, axis=1)
        stretch_ok = stretch <= self.max_edge_stretch
        inter = np.full(b, -1, dtype=np.int64)
        inter_ok = np.ones(b, dtype=bool)
        if self.collision is not None:
            n_faces = len(self.faces[self.topology])
            for k in range(b):
                v = self.torch.from_numpy(vertices[k]).to(self.device)
                inter[k] = int((self.collision.detect_self_intersections(v) >= 0).sum())
            inter_ok = inter <= self.max_intersect_fraction * n_faces
        return bones_ok & stretch_ok & inter_ok, inter, stretch

    # ------------------------------------------------------------------ generation
    def identity(
        self, seed: int, index: int, n_poses: int, on_body: Callable[[int], None] | None = None
    ) -> SynthIdentity:
        """Generate identity ``index`` with poses ``0 .. n_poses-1`` (checked, resampled on failure)."""
        phen = self.phenotype(seed, index)
        neutral_out = self.forward(phen, None)
        neutral_v, neutral_h = neutral_out["vertices"][0], neutral_out["bone_heads"][0]
        neutral = {self.topology: neutral_v}
        for t in self.extra_topologies:
            if t in self.remeshes:
                neutral[t] = self.remeshes[t].apply(neutral_v)
            else:
                neutral[t] = self.forward(phen, None, t)["vertices"][0]
        name = identity_name(index)
        bodies: list[SynthBody] = []
        rejected = 0
        for start in range(0, n_poses, self.batch_size):
            js = list(range(start, min(n_poses, start + self.batch_size)))
            attempts = {j: 0 for j in js}
            done: dict[int, tuple] = {}
            pending = js
            while pending:
                angles = np.stack([
                    self.key_vectors[self.pose_name(seed, index, j)] if attempts[j] >= self.max_attempts
                    else self.pose_angles(seed, index, j, attempts[j])
                    for j in pending
                ])
                out = self.forward(phen, angles)
                ok, inter, stretch = self.check(out["vertices"], out["bone_heads"], neutral_v, neutral_h)
                retry = []
                for k, j in enumerate(pending):
                    fallback = attempts[j] >= self.max_attempts
                    if ok[k] or fallback:
                        done[j] = (angles[k], out["vertices"][k], int(inter[k]), float(stretch[k]),
                                   attempts[j] + 1, fallback)
                    else:
                        rejected += 1
                        attempts[j] += 1
                        retry.append(j)
                pending = retry
            batch_angles = np.stack([done[j][0] for j in js])
            batch_v = np.stack([done[j][1] for j in js])
            extra_v = {
                t: self.remeshes[t].apply(batch_v) if t in self.remeshes
                else self.forward(phen, batch_angles, t)["vertices"]
                for t in self.extra_topologies
            }
            rot = rotation_vectors(self.rig.rotations(batch_angles))
            for k, j in enumerate(js):
                a, v, inter_j, stretch_j, n_att, fb = done[j]
                bodies.append(SynthBody(
                    identity=name, pose_name=self.pose_name(seed, index, j), pose_index=j, angles=a,
                    rotvecs=rot[k], vertices=v, extra={t: extra_v[t][k] for t in self.extra_topologies},
                    attempts=n_att, intersecting_faces=inter_j, edge_stretch=stretch_j, fallback=fb,
                ))
                if on_body is not None:
                    on_body(1)
        return SynthIdentity(name, index, phen, neutral, bodies, rejected)


# ---------------------------------------------------------------------------------------- writing
def _truth_record(synth: AnnySynth, ident: SynthIdentity, body: SynthBody) -> dict:
    keys = pose_library.dof_keys()
    return {
        "identity": ident.identity,
        "mesh": layout.mesh_path(ident.identity, body.stem),
        "neutral": layout.neutral_path(ident.identity),
        "topology": synth.topology,
        "phenotype": ident.phenotype.values(),
        "sex": ident.phenotype.sex,
        "age_years": ident.phenotype.age_years,
        "pose_name": body.pose_name,
        "pose_index": body.pose_index,
        "angles_deg": {k: float(v) for k, v in zip(keys, body.angles)},
        "pose_parameterization": "local-ref",
        "bone_rotvecs": [[float(x) for x in r] for r in body.rotvecs],
        "attempts": body.attempts,
        "fallback_to_key_pose": body.fallback,
        "intersecting_faces": body.intersecting_faces,
        "edge_stretch": body.edge_stretch,
    }


def write_identity(out_dir: Path, synth: AnnySynth, ident: SynthIdentity) -> None:
    """Write one identity's meshes, neutral bodies and truth files (each atomically)."""
    from bodydata.mesh import write_mesh

    for t, v in ident.neutral.items():
        base = out_dir if t == synth.topology else out_dir / t
        write_mesh(base / layout.neutral_path(ident.identity), v, synth.faces[t])
    for body in ident.bodies:
        write_mesh(out_dir / layout.mesh_path(ident.identity, body.stem), body.vertices, synth.faces[synth.topology])
        for t, v in body.extra.items():
            write_mesh(out_dir / t / layout.mesh_path(ident.identity, body.stem), v, synth.faces[t])
        atomic_write_text(
            out_dir / layout.truth_path(ident.identity, body.stem),
            json.dumps(_truth_record(synth, ident, body), indent=1) + "\n",
        )


def _identities_csv(idents: Iterable[SynthIdentity]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["identity", "sex", "age_years", *PHENOTYPE_KEYS, "stature_m"])
    for ident in idents:
        p = ident.phenotype
        v = next(iter(ident.neutral.values()))
        stature = float(v[:, 2].max() - v[:, 2].min())
        w.writerow([ident.identity, p.sex, repr(p.age_years), *[repr(float(getattr(p, k))) for k in PHENOTYPE_KEYS],
                    repr(stature)])
    return buf.getvalue()


def run_synth(
    out_dir: str | os.PathLike,
    identities: int,
    poses: int,
    seed: int = 0,
    topology: str = "notoes",
    extra_topologies: Sequence[str] = (),
    sheet: bool = True,
    progress: bool = True,
    synth: AnnySynth | None = None,
    **options,
) -> SynthSummary:
    """Generate ``identities`` x ``poses`` bodies into ``out_dir`` (layout in the module docstring).

    ``options`` go to :class:`AnnySynth` (jitter, pose_names, max_attempts, ...) unless ``synth`` is
    given (a prebuilt generator, reused e.g. by tests and benchmarks).
    """
    if identities < 1 or poses < 1:
        raise SynthError("need at least one identity and one pose")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if synth is None:
        synth = AnnySynth(topology=topology, extra_topologies=extra_topologies, **options)
    from tqdm import tqdm

    bar = tqdm(total=identities * poses, unit="body", desc="synth anny", disable=not progress)
    idents: list[SynthIdentity] = []
    sheet_meshes: list[tuple[np.ndarray, np.ndarray]] = []
    sheet_titles: list[str] = []
    n_sheet = 24
    for i in range(identities):
        ident = synth.identity(seed, i, poses, on_body=bar.update)
        write_identity(out, synth, ident)
        # Keep only what the summary files and the sheet need, not every body.
        for body in ident.bodies:
            if len(sheet_meshes) < n_sheet and (body.pose_index < max(1, math.ceil(n_sheet / identities))):
                sheet_meshes.append((body.vertices, synth.faces[synth.topology]))
                p = ident.phenotype
                sheet_titles.append(f"{ident.identity} {p.sex[0]} {p.age_years:.0f}y\n{body.stem}")
        ident.bodies = [
            SynthBody(b.identity, b.pose_name, b.pose_index, b.angles, b.rotvecs, np.empty((0, 3)), {},
                      b.attempts, b.intersecting_faces, b.edge_stretch, b.fallback)
            for b in ident.bodies
        ]
        idents.append(ident)
    bar.close()
    atomic_write_text(out / layout.IDENTITIES_CSV, _identities_csv(idents))
    for t, r in synth.remeshes.items():
        _write_map(out / layout.map_path(t), r)
    n_rejected = sum(x.rejected for x in idents)
    n_fallback = sum(b.fallback for x in idents for b in x.bodies)
    n_bodies = sum(len(x.bodies) for x in idents)
    meta = {
        "layout_version": layout.LAYOUT_VERSION,
        "generator": "bodydata synth anny",
        "bodydata_version": _bodydata_version(),
        "anny_version": synth.anny_version,
        "arguments": {
            "identities": identities, "poses": poses, "seed": seed, "topology": synth.topology,
            "extra_topologies": list(synth.extra_topologies), "jitter": synth.jitter,
            "pose_names": list(synth.pose_names), "max_attempts": synth.max_attempts,
            "max_intersect_fraction": synth.max_intersect_fraction, "max_edge_stretch": synth.max_edge_stretch,
            "check_intersections": synth.collision is not None,
        },
        "topologies": {
            **{t: {"anny_topology": TOPOLOGIES[t], "vertices": int(synth.models[t].template_vertices.shape[0]),
                   "faces": int(len(synth.faces[t])), "folder": "." if t == synth.topology else t}
               for t in synth.models},
            **{t: {"derived_from": r.source, "map": layout.map_path(t), "vertices": int(len(r.face_ids)),
                   "faces": int(len(r.faces)), "folder": t,
                   "construction": "midpoint subdivision, each vertex moved at random inside an incident source "
                                   f"triangle (fixed seed {SUBDIV_SEED})"}
               for t, r in synth.remeshes.items()},
        },
        "units": "m",
        "up_axis": "+z",
        "facing": "-y",
        "neutral_pose": "anny reference pose (all local-ref pose parameters identity; an A-pose)",
        "phenotype_distribution": asdict(synth.distribution),
        "bone_labels": synth.bone_labels,
        "dof_keys": pose_library.dof_keys(),
        "key_poses": {n: pose_library.KEY_POSES[n] for n in synth.pose_names},
        "counts": {"identities": len(idents), "bodies": n_bodies, "rejected_samples": n_rejected,
                   "fallback_to_key_pose": n_fallback},
    }
    atomic_write_text(out / layout.SYNTH_JSON, json.dumps(meta, indent=1) + "\n")
    sheet_path = None
    if sheet:
        from bodydata.viz.contact_sheet import render_contact_sheet

        sheet_path = render_contact_sheet(
            out / "contact_sheet.png", sheet_meshes, titles=sheet_titles,
            suptitle=(f"bodydata synth anny: seed {seed}, {identities} identities x {poses} poses ({synth.topology}); "
                      f"showing {len(sheet_meshes)} bodies, up to {max(1, math.ceil(n_sheet / identities))} per identity"),
        )
    return SynthSummary(out, len(idents), n_bodies, n_rejected, n_fallback, time.perf_counter() - t0, sheet_path)


def _write_map(path: Path, remesh: BarycentricRemesh) -> None:
    """``map.npz``: face_ids (n,) int64, barycentrics (n, 3) float64, faces (m, 3) int64, source_faces, source."""
    from bodydata.fsutil import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object keeps numpy from appending ".npz" to the temp name
            np.savez(fh, face_ids=remesh.face_ids, barycentrics=remesh.barycentrics, faces=remesh.faces,
                     source_faces=remesh.source_faces, source=np.array(remesh.source))


def _bodydata_version() -> str:
    import bodydata

    return bodydata.__version__
