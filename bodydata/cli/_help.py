"""What every command's ``--help`` ends with: an example, and the exit statuses all commands share.

One table for all commands (a command that sets its own epilog keeps it); ``bodydata --help`` lists the statuses,
and ``tests/test_cli_help.py`` fails when a command has no example.
"""
from __future__ import annotations

import click

EXIT_STATUSES = ("Exit status (every command): 0 all items done; 1 some items failed (each has a manifest row or a line "
                 "saying why); 2 cannot start (bad input, found before any item ran); 130 interrupted (Ctrl-C).")

#: command path -> example lines
EXAMPLES: dict[str, list[str]] = {
    "template build": ["bodydata template build anny-lite --out templates/anny-lite",
                       "bodydata template build scape --out templates/scape --mesh SCAPE.ply --faces F.txt --labels L.txt"],
    "template show": ["bodydata template show anny --png"],
    "sources list": ["bodydata sources list"],
    "virtual-scan": ["bodydata virtual-scan --meshes bodies/meshes/anny00000 --out scans --points 200000 --seed 0",
                     "bodydata virtual-scan --meshes faust.csv --out faust_scans --faces noisy --noise-mm 2 --no-floor --landmarks carry"],
    "sources scan": ["bodydata sources scan --source faust --root MPI-FAUST/training --out faust.csv",
                     "bodydata sources scan --source folder --root scans --subject-regex '(?P<subject>\\w+)_\\d+' --out scans.csv"],
    "synth anny": ["bodydata synth anny --identities 8 --poses 6 --seed 0 --out bodies",
                   "bodydata synth anny --identities 4 --poses 3 --topology notoes_collapse10pc --out small"],
    "prior build": ["bodydata prior build --template anny --components 200 --out anny_prior.npz",
                    "bodydata prior build --template templates/scape --manifest scape.csv --components 150 --out scape_prior.npz"],
    "prior lift": ["bodydata prior lift --cage-rest coarse_rest.ply --fine-rest fine_rest.ply --poses coarse_poses --out lifted"],
    "convert": ["bodydata convert --source faust --root MPI-FAUST/training --template anny --prior anny_prior.npz "
                "--out faust_anny --kind registration --match 'tr_reg_00[0-9]'",
                "bodydata convert --source folder --root my_scans --template anny --prior anny_prior.npz --out scans_anny "
                "--landmarks model",
                "bodydata convert --source faust --root MPI-FAUST/training --template anny-lite --prior runs/dhnn "
                "--out faust_model_prior --kind registration --limit 10"],
    "benchmark correspondence": ["bodydata benchmark correspondence --root FAUST_r --converted faust_r_anny/meshes "
                                 "--ids tr_reg_060-079 --out corr.csv",
                                 "bodydata benchmark correspondence --root FAUST_r --converted MPI-FAUST/training/registrations "
                                 "--registrations --pairs consecutive --geodesics dijkstra"],
    "fit-joints": ["bodydata fit-joints --run runs/dhnn --joints2d frames/ --out fits/joints --focal 1000 --center 500 500",
                   "bodydata fit-joints --run runs/dhnn --joints2d frame_0001.json --out fits/one --iterations 500"],
    "neutralize": ["bodydata neutralize --manifest one.csv --template anny --target anny --out neut1",
                   "bodydata neutralize --manifest one.csv --template anny --target anny --method body --out neut1"],
    "features": ["bodydata features --template anny --meshes one.csv --out f.npz --coarse"],
    "reconstruct": ["bodydata reconstruct --template anny --features ds1/f.npy --out meshes_back"],
    "build-dataset": ["bodydata build-dataset --inputs one.csv --neutral neut1/neutral.csv --template anny "
                      "--split subject --test-neutral 2 --test-pose 10 --out ds1"],
    "run": ["bodydata run anny-demo", "bodydata run pipelines/paper-faust-scape.yaml --workdir runs/paper",
            "bodydata run --list-stages"],
}


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))
    else:
        yield " ".join(path), command


def attach(group: click.Group) -> None:
    """Give every command without an epilog its example and the exit statuses; the group gets the statuses."""
    for path, command in _walk(group):
        if not command.epilog and path in EXAMPLES:
            lines = EXAMPLES[path]
            head = "Example:" if len(lines) == 1 else "Examples:"
            command.epilog = "\b\n" + head + "\n" + "\n".join(f"  {line}" for line in lines) + "\n\n" + EXIT_STATUSES
    group.epilog = EXIT_STATUSES


def commands(group: click.Group) -> list[tuple[str, click.Command]]:
    return list(_walk(group))
