"""Pre-warm the numba cache at image build time (run by k8s/install.sh from the project root).

Numba compiles lazily, on a kernel's first call with concrete types, so importing the kernel
modules alone caches only kernels declared with explicit signatures. This script therefore:

1. imports every ``*_nb.py`` kernel module of the project's packages (a module that fails to
   import fails the build: a broken kernel module must not ship);
2. runs every benchmark suite in ``benchmarks/`` with ``--quick`` through ``osd bench``, which
   calls the kernels with the types a real run uses and so writes their cache entries (suites
   that need the real-data samples of ../shared, absent from the build context, are skipped
   and named);
3. synthesizes, validates and summarises a small market through ``osd data`` (the data kernels
   a cluster run uses when it synthesizes or checks its market);
4. reports, per cache-enabled kernel, whether a cache index now exists, so a kernel that no
   benchmark exercises is named in the build log instead of silently compiling on the cluster.

Whatever kernels and suites exist are found at build time; nothing here names a module.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from numba.core.dispatcher import Dispatcher

PACKAGES = ("backtest", "models", "discovery", "cluster")


def kernel_modules(root: Path) -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*_nb.py")):
            names.append(".".join(path.relative_to(root).with_suffix("").parts))
    return names


def cached_kernels(module) -> list[tuple[str, str]]:
    """(file stem, qualified name) of the module's own dispatchers compiled with cache=True."""
    stem = module.__name__.rsplit(".", 1)[-1]
    found = []
    for obj in vars(module).values():
        if not isinstance(obj, Dispatcher) or obj.py_func.__module__ != module.__name__:
            continue
        if type(obj._cache).__name__ == "NullCache":
            continue
        if obj.targetoptions.get("inline") == "always":
            continue  # compiled into its callers, never called on its own
        found.append((stem, obj.py_func.__qualname__))
    return found


def main() -> int:
    root = Path.cwd()
    cache_dir = Path(os.environ["NUMBA_CACHE_DIR"])
    kernels = []
    for name in kernel_modules(root):
        kernels += cached_kernels(importlib.import_module(name))

    suites = sorted(p.stem for p in (root / "benchmarks").glob("*.py") if not p.stem.startswith("_"))
    if suites:
        print(f"prewarm: running benchmark suites --quick: {', '.join(suites)}", flush=True)
        subprocess.run([sys.executable, "-m", "discovery", "bench", "--quick", "--skip-unavailable"], check=True)
    else:
        print("prewarm: no benchmark suites found in benchmarks/", flush=True)

    with tempfile.TemporaryDirectory(prefix="osd-prewarm-") as tmp:
        market = str(Path(tmp) / "market")
        print("prewarm: osd data synth, validate and stats on one quarter of a synthetic market", flush=True)
        for args in (["synth", "--out", market, "--start", "2021-01-04", "--end", "2021-03-31"],
                     ["validate", market], ["stats", market]):
            subprocess.run([sys.executable, "-m", "discovery", "data", *args], check=True, stdout=subprocess.DEVNULL)

    index_names = [p.name for p in cache_dir.rglob("*.nbi")]
    cold = [f"{stem}.{qualname}" for stem, qualname in kernels
            if not any(n.startswith(f"{stem}.{qualname}-") for n in index_names)]
    print(f"prewarm: {len(index_names)} cache index files in {cache_dir}; "
          f"{len(kernels) - len(cold)} of {len(kernels)} cache-enabled kernels warm")
    if cold:
        print("prewarm: not exercised by any benchmark (compiled on first use instead): " + ", ".join(cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
