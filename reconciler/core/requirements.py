"""Requirement preflight: will instances built from an image start with its profiles?

The daemon checks an image's ``requirements.*`` only when an instance starts; this
module checks them at plan time against the profiles the image is declared with
(later profiles override earlier ones, as Incus merges them) and the host.
Pure: every input is a value.  Unknowns become notes, never warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.model.observed import Profile

PREFIX = "requirements."


@dataclass(frozen=True)
class Finding:
    code: str
    message: str


def from_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """``requirements.*`` image properties as a requirements map (prefix removed)."""
    return {k[len(PREFIX):]: v for k, v in properties.items() if k.startswith(PREFIX)}


def _merged(profiles: Sequence[Profile]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    config: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    for p in profiles:
        config.update(p.config)
        devices.update(p.devices)
    return config, devices


def check(
    requirements: Mapping[str, str],
    *,
    type_: str,
    profile_names: Sequence[str],
    profiles: Mapping[str, Profile],
    kernel_cgroup: str | None,
) -> tuple[list[Finding], list[str]]:
    """Findings (plan warnings) and notes (what could not be checked)."""
    found: list[Finding] = []
    notes: list[str] = []
    listed = "[" + ", ".join(profile_names) + "]"
    config, devices = _merged([profiles[n] for n in profile_names if n in profiles])
    truthy = ("true", "1", "yes", "on")
    if requirements.get("nesting", "").lower() in truthy and \
            config.get("security.nesting", "").lower() not in truthy:
        found.append(Finding("requirements.nesting",
                             f"instances need security.nesting=true; none of the profiles "
                             f"{listed} sets it"))
    if requirements.get("privileged", "").lower() == "false" and \
            config.get("security.privileged", "").lower() in truthy:
        found.append(Finding("requirements.privileged",
                             f"the image cannot run privileged, but the profiles {listed} set "
                             "security.privileged=true; drop that or use other profiles"))
    if type_ == "virtual-machine":
        if requirements.get("secureboot", "").lower() == "false" and \
                config.get("security.secureboot", "true").lower() in truthy:
            found.append(Finding("requirements.secureboot",
                                 f"the image cannot boot with secure boot; the profiles {listed} "
                                 "leave security.secureboot on: set it to false in one of them"))
        if requirements.get("cdrom_agent", "").lower() in truthy and not any(
                d.get("type") == "disk" and d.get("source") == "agent:config"
                for d in devices.values()):
            found.append(Finding("requirements.cdrom_agent",
                                 f"the image needs an agent:config disk; none of the profiles "
                                 f"{listed} has one (add a disk device with source "
                                 "agent:config)"))
    if requirements.get("cgroup", "").lower() == "v1":
        if kernel_cgroup == "v2":
            found.append(Finding("requirements.cgroup",
                                 "the image needs cgroup v1, which this host does not provide "
                                 "(Incus 7 removed it); its instances will not start"))
        elif kernel_cgroup is None:
            notes.append("the host's cgroup layout is not exposed by the daemon, so "
                         "requirements.cgroup=v1 could not be checked")
    return found, notes
