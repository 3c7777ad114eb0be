"""The process environment a vla-dojo node runs in: DDS profile, middleware, domain."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FASTDDS_PROFILE = Path(__file__).resolve().parent.parent / "fastdds_profile.xml"


def node_env(
    domain_id: int | None = None,
    *,
    dds_profile: bool = True,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a node process: Fast DDS with the project's profile, the given domain.

    ``dds_profile=False`` leaves Fast DDS at its defaults (the transport benchmark's baseline).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if dds_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        env["SKIP_DEFAULT_XML_FILE"] = "1"
    if domain_id is not None:
        if not 0 <= int(domain_id) <= 232:
            raise ValueError(f"ROS_DOMAIN_ID={domain_id} is outside 0..232")
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
