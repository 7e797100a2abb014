"""Landmarks of a mesh or point cloud that came with none: read off anny fitted to it (the body-model start).

The fitted anny body (:mod:`bodydata.bodyfit.fit`, any units and orientation) carries anny's own landmark
vertices (``landmarks_anny_notoes.csv``, the shared vocabulary of :mod:`bodydata.templates.landmarks`); each
becomes the target vertex nearest to it. A template of another connectivity (``scape``) takes them by name.
The registration (Eq. 14) then starts from their similarity, as from hand-placed landmarks, and its landmark
weight decays over the fine rounds, so the surface decides the details. When the template is anny's own mesh,
the whole fitted body also goes to the registration as a guide (``E_guide`` of :mod:`.register`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bodydata.bodyfit.fit import BodyFit, BodyFitSettings, BodyFitter
from bodydata.device import pick_device
from bodydata.errors import BodydataError

__all__ = ["BodyLandmarks", "BodyLandmarksError", "LANDMARK_MODES", "LandmarkFind"]

#: how the convert stage finds a mesh's landmarks: ``auto`` = its own (file, shipped topology, .vts map) when it has
#: them, else from the body-model fit; ``model`` = always from the fit (a mesh's own are ignored: the figure for
#: input with no landmarks at all); ``none`` = its own only (a mesh without fails, as before the body model)
LANDMARK_MODES = ("auto", "model", "none")


class BodyLandmarksError(BodydataError, ValueError):
    """A template whose landmarks anny cannot give (fewer than 4 shared names)."""


@dataclass
class LandmarkFind:
    """landmarks : {name: target vertex id} (None when the fit failed); fit : the body fit; reason : why not;
    guide : (n, 3) float64 the fitted body in the template's own vertex order (an anny template), else None."""

    landmarks: dict[str, int] | None
    fit: BodyFit
    reason: str = ""
    guide: np.ndarray | None = None


class BodyLandmarks:
    """Builds the body fitter once (anny on two topologies); :meth:`find` fits one target and reads its landmarks.

    names : the template's landmark names (those anny also has are found; at least 4 are needed); template_topology :
    the template's anny topology (``notoes``, ``notoes_collapse10pc``) when it is anny's own mesh: the fit is then
    made in it and the fitted body is returned as the registration's guide (an articulated correspondence).
    device : where the fit runs (None: CUDA when present, :func:`bodydata.device.pick_device`)."""

    def __init__(self, names: list[str], settings: BodyFitSettings = BodyFitSettings(), device: str | None = None,
                 template_topology: str | None = None) -> None:
        import dataclasses

        if template_topology:
            settings = dataclasses.replace(settings, topology=template_topology)
        self.guided = bool(template_topology)
        from bodydata.templates.landmarks import load_landmarks

        own = load_landmarks(f"anny_{settings.topology}")
        self.names = [n for n in names if n in own]
        if len(self.names) < 4:
            raise BodyLandmarksError(f"the template shares only {len(self.names)} landmark names with anny (need >= 4)")
        self.ids = np.array([own[n] for n in self.names], np.int64)
        self.fitter = BodyFitter(settings, pick_device(device))

    def find(self, vertices: np.ndarray, faces: np.ndarray | None = None, normalised: bool = False) -> LandmarkFind:
        """vertices : (m, 3) float64 target, faces : (k, 3) int64 or None (a point cloud) -> its landmarks from the
        body fit; ``normalised``: its coordinates have no physical unit (:meth:`BodyFitter.fit`)."""
        from scipy.spatial import cKDTree

        fit = self.fitter.fit(vertices, faces, normalised)
        if fit.status != "done":
            return LandmarkFind(None, fit, fit.reason)
        _, idx = cKDTree(np.asarray(vertices, np.float64)).query(fit.vertices[self.ids], k=1)
        return LandmarkFind({n: int(i) for n, i in zip(self.names, idx)}, fit,
                            guide=fit.vertices if self.guided else None)
