"""``python -m bodydata.train`` (and ``torchrun --nproc_per_node N -m bodydata.train``): the train command, with
DistributedDataParallel when started by torchrun (one process per GPU; gloo on CPU)."""
from __future__ import annotations

from bodydata.train.distributed import main

if __name__ == "__main__":
    main()
