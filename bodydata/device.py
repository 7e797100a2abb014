"""Which torch device to use: CUDA when present unless told otherwise, and a one-line error for a device not here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bodydata.errors import BodydataError

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceError", "pick_device"]


class DeviceError(BodydataError):
    """A device was asked for that this machine does not have."""


def pick_device(name: "str | torch.device | None" = "auto") -> "torch.device":
    """``auto``/None: CUDA when available, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given, checked."""
    import torch

    name = "auto" if name is None else str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA device is available here (use --device auto or cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
