"""docs/architecture.md lists every module (it is generated; this fails when someone adds a module without regenerating)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_map_is_current():
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "architecture.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_no_module_imports_up_the_data_flow():
    # Layers in data-flow order; a module may import its own layer or earlier ones (viz and cli excepted: they sit on top).
    order = ["manifest", "mesh", "templates", "generator", "sources", "features", "bodyfit", "registration", "neutral", "dataset",
             "model", "train", "evaluate", "pipeline"]
    import ast

    for i, layer in enumerate(order):
        folder = ROOT / "bodydata" / layer
        if not folder.is_dir():
            continue
        later = set(order[i + 1 :]) | {"cli"}
        for f in folder.glob("*.py"):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "bodydata" and len(parts) > 1 and parts[1] in later:
                        raise AssertionError(f"{f.relative_to(ROOT)} imports {name}: against the data flow")
