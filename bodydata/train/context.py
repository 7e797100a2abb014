"""What a network is built for, read from a dataset: the template's parts and part graph, and the feature scaling."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bodydata.dataset.format import FILES, read_card
from bodydata.model.base import ModelContext
from bodydata.model.skinning import skinning_mask

__all__ = ["context_from_dataset"]


def context_from_dataset(root: str | os.PathLike, card: dict[str, Any] | None = None) -> ModelContext:
    """The :class:`~bodydata.model.base.ModelContext` of a built dataset (its template is loaded by the card's spec)."""
    from bodydata.dataset.scaling_io import load_scaling
    from bodydata.templates.template import load_template

    root = Path(root)
    card = card or read_card(root)
    tpl = load_template(card["template"]["spec"])
    mask = skinning_mask(tpl.part_labels, tpl.part_graph(), len(tpl.part_names))
    return ModelContext.from_parts(tpl.part_labels, mask, load_scaling(root / FILES["scaling"]))
