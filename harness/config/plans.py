"""Which plan each platform's tests use, or why they skip: decided once per session.

A run names at most one plan (`--plan`); it targets one platform, and the other platforms' tests skip. Without
`--plan`, a platform with a default plan (the CPU: `fixtures/plans/cpu-tiny.yaml`) uses it, loaded when its tests
are first parametrised, so a run that selects no CPU test never reads it. Every plan is checked runnable when it
is loaded: bad input stops the run before any test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from harness.config.plan import Plan, PlatformName, load_plan

DEFAULT_PLANS: Mapping[PlatformName, str] = {"cpu": "fixtures/plans/cpu-tiny.yaml"}


def _ignore(plan: Plan) -> None:
    return None


class Plans:
    """The session's plans by platform. `on_load(plan)` runs once for each plan loaded (e.g. to warn of a foreign
    baseline); loading raises PlanError for a plan that cannot run."""

    def __init__(
        self,
        root: Path,
        given: Plan | None = None,
        defaults: Mapping[PlatformName, str] = DEFAULT_PLANS,
        on_load: Callable[[Plan], None] = _ignore,
    ) -> None:
        self.root, self.given, self.defaults, self.on_load = root, given, defaults, on_load
        self.loaded: dict[PlatformName, Plan] = {}
        if given is not None:
            self.loaded[given.platform] = given

    @classmethod
    def from_option(
        cls,
        root: Path,
        option: str | None,
        on_load: Callable[[Plan], None] = _ignore,
        runs_here: Callable[[PlatformName], bool] = lambda platform: True,
    ) -> Plans:
        """The plans of a session started with `--plan option` (None: the defaults). A given plan for a platform
        that does not run here is checked for its keys and values only: its tests skip saying why (no NPU), and
        that reason comes first, not a model path this machine was never meant to have."""
        given = None
        if option:
            given = load_plan(option)
            if runs_here(given.platform):
                given.check_runnable()
            on_load(given)
        return cls(root, given, on_load=on_load)

    def applies(self, platform: PlatformName) -> bool:
        """Whether a plan exists for `platform` (without loading a default one)."""
        return platform in self.loaded or (self.given is None and platform in self.defaults)

    def for_platform(self, platform: PlatformName) -> Plan | None:
        """The plan for `platform`: the given one, or the platform's default plan (loaded now), else None."""
        if platform not in self.loaded and self.given is None and platform in self.defaults:
            plan = load_plan(self.root / self.defaults[platform])
            plan.check_runnable()
            self.on_load(plan)
            self.loaded[platform] = plan
        return self.loaded.get(platform)

    def skip_reason(self, platform: PlatformName) -> str | None:
        """Why `platform`'s tests skip although the platform is here: the given plan targets another one."""
        if self.given is not None and self.given.platform != platform:
            return f"the plan {self.given.source} targets {self.given.platform}, not {platform}"
        return None

    @property
    def first(self) -> Plan | None:
        """The given plan, else the first plan loaded: the run's plan in its summary and index entry."""
        return self.given or next(iter(self.loaded.values()), None)
