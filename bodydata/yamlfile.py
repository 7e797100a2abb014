"""Reading a YAML file that must hold a mapping (pipeline files, run configs): one set of one-line errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bodydata.errors import BodydataError

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: str | os.PathLike, error: type[BodydataError] = BodydataError,
                      what: str = "a YAML mapping is expected") -> dict[str, Any]:
    """The mapping in ``path`` (an empty file is ``{}``). Raises ``error`` with ``"<path>: <reason>"`` when the file
    cannot be read, is not YAML, or holds something else than a mapping (``what`` says what was expected)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{path}: {what} (got a {type(doc).__name__})")
    return doc
