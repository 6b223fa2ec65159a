"""Audit the virtualenv's installed packages for published advisories (pip-audit).

pip-audit asks PyPI's per-version JSON API (``/pypi/<name>/<version>/json``). Where
that API is out of reach (some networks let through only the project-level
``/pypi/<name>/json``), pip-audit can only say "could not be audited": this script
then reads the project-level document, whose ``vulnerabilities`` are those of the
newest release, and so audits every installed package that is that release.

A package found vulnerable fails the audit, and so does one of the service's own
(umstrack's requirements and theirs) that neither way could audit. A test tool held
below its newest release by another test tool (schemathesis pins jsonschema-rs) is
named as not audited, without failing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

VENV_BIN = Path(sys.executable).parent


def main() -> int:
    report = subprocess.run(
        [
            str(VENV_BIN / "pip-audit"),
            "--local",
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if not report.stdout.strip():
        print(f"audit: pip-audit gave no report:\n{report.stderr}", file=sys.stderr)
        return 1
    dependencies = json.loads(report.stdout)["dependencies"]
    runtime = _runtime_closure("umstrack")
    failures: list[str] = []
    unaudited: list[str] = []
    audited = by_project = 0
    for dependency in dependencies:
        name = dependency["name"]
        if "skip_reason" in dependency:
            if "editable" in dependency["skip_reason"]:
                continue  # this project itself
            problem = _audit_newest(name)
            by_project += problem is None
            if problem and "could not be audited" in problem and _key(name) not in runtime:
                unaudited.append(problem)
                continue
        else:
            vulns = dependency.get("vulns", [])
            ids = ", ".join(v["id"] for v in vulns)
            problem = f"{name} {dependency['version']}: {ids}" if vulns else None
            audited += problem is None
        if problem:
            failures.append(problem)
    print(
        f"audit: {audited} packages audited by pip-audit, {by_project} through their "
        f"project's advisories (newest release installed), {len(unaudited)} test tools "
        f"not audited, {len(failures)} failing"
    )
    for problem in unaudited:
        print(f"audit: not a dependency of the service: {problem}")
    for failure in failures:
        print(f"audit: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _key(name: str) -> str:
    return canonicalize_name(name)


def _runtime_closure(root: str) -> set[str]:
    """The installed distributions the service needs at run time: ``root``'s
    requirements without extras, and theirs, transitively."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            wanted = {"", *extras}
            if requirement.marker and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in wanted
            ):
                continue
            key = _key(requirement.name)
            if key not in seen:
                seen.add(key)
                todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


def _audit_newest(name: str) -> str | None:
    """None when ``name``'s installed version is its newest release and PyPI lists no
    advisory against it; else why it fails."""
    installed = metadata.version(name)
    answer = requests.get(f"https://pypi.org/pypi/{name}/json", timeout=30)
    if answer.status_code != 200:
        return f"{name} {installed}: could not be audited (PyPI answered {answer.status_code})"
    project = answer.json()
    newest = project["info"]["version"]
    if newest != installed:
        return (
            f"{name} {installed}: could not be audited (only {newest}'s advisories are reachable)"
        )
    vulns = [v for v in project.get("vulnerabilities", []) if not v.get("withdrawn")]
    if vulns:
        return f"{name} {installed}: " + ", ".join(v["id"] for v in vulns)
    return None


if __name__ == "__main__":
    sys.exit(main())
