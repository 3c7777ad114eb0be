"""The workstation image's steps without building it: the Dockerfile's stages (the ROS install
apart from the project's own steps), the local proof (docker/local-base.sh) building the very
stage the image is, no local package index baked into the image, and the entrypoint with and
without a ROS 2 install."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
LOCAL_BASE = DOCKER / "local-base.sh"
ENTRYPOINT = DOCKER / "entrypoint.sh"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def text(self, keyword: str | None = None) -> str:
        return "\n".join(a for k, a in self.instructions if keyword in (None, k))


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs (name -> default) and the stages with their instructions (keyword,
    arguments), continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"an unnamed stage: {line}"
            stages.append(Stage(words[0], words[2]))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def _dockerfile() -> tuple[dict[str, str], dict[str, Stage], list[Stage]]:
    global_args, stages = parse_dockerfile(DOCKERFILE.read_text())
    return global_args, {s.name: s for s in stages}, stages


def test_the_parser_reads_stages_and_continuations():
    args, stages = parse_dockerfile(
        "ARG A=x\n# c\nFROM ${A} AS one\nRUN a \\\n    && b\nFROM one AS two\nUSER 1\n"
    )
    assert args == {"A": "x"}
    assert [(s.base, s.name) for s in stages] == [("${A}", "one"), ("one", "two")]
    assert stages[0].instructions == [("RUN", "a      && b")]
    with pytest.raises(AssertionError, match="unnamed"):
        parse_dockerfile("FROM scratch\n")


def test_the_stages_and_what_the_image_is_built_from():
    global_args, by_name, stages = _dockerfile()
    assert [(s.base, s.name) for s in stages] == [
        ("scratch", "source"),
        ("${BASE_IMAGE}", "ros"),
        ("${PROJECT_BASE}", "workstation"),
    ]
    # a plain `docker build` produces the last stage, on the ros stage on the CUDA base
    assert global_args["PROJECT_BASE"] == "ros"
    assert global_args["BASE_IMAGE"].startswith("nvidia/cuda:")
    assert "ubuntu24.04" in global_args["BASE_IMAGE"]  # Python 3.12, which the wheels need
    assert global_args["ROS_DISTRO"] == "kilted"
    for name in ("ros", "workstation"):
        assert ("ARG", "ROS_DISTRO") in by_name[name].instructions, name


def test_the_ros_stage_is_the_base_and_the_project_steps_are_all_in_the_image_stage():
    _, by_name, _ = _dockerfile()
    ros, work = by_name["ros"], by_name["workstation"]
    assert "packages.ros.org" in ros.text("RUN")
    assert "ros-${ROS_DISTRO}-ros-base" in ros.text("RUN")
    for needed in ("python3.12 ", "python3.12-venv", "python3.12-dev", "make", "ca-certificates"):
        assert needed in ros.text("RUN"), f"the ros stage must provide {needed.strip()}"
    assert "COPY" not in dict(ros.instructions), "the checkout belongs to the project's stage"
    assert "ros.org" not in work.text() and "/opt/ros" not in work.text()
    run = work.text("RUN")
    assert ("COPY", "--from=source /src /opt/vla-dojo/src") in work.instructions
    assert "$(make -s print-apt-packages)" in run
    assert "$(make -s print-pip-extras" in run
    assert "python3.12 -m venv" in run
    assert "useradd" in run and "dialout,video,plugdev" in run
    entry = "/usr/local/bin/vla-dojo-entrypoint"
    assert f"install -m 0755 docker/entrypoint.sh {entry}" in run
    assert ("ENTRYPOINT", f'["{entry}"]') in work.instructions
    keywords = [k for k, _ in work.instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    # the venv's paths that ENV names are where the venv is made
    env = work.text("ENV")
    assert "VLA_DOJO_PREFIX=/opt/vla-dojo/venv" in env
    assert "FASTDDS_DEFAULT_PROFILES_FILE=/opt/vla-dojo/venv/lib/python3.12/" in env
    assert (ROOT / "dojo" / "fastdds_profile.xml").is_file()
    # the twin renders through EGL: on the GPU only when the NVIDIA runtime mounts its EGL
    # libraries, which it does for the graphics capability (the CUDA base asks compute,utility)
    assert "MUJOCO_GL=egl" in env
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics" in env


def test_no_local_package_index_or_pip_configuration_is_baked_into_the_image():
    text = DOCKERFILE.read_text()
    for local in (
        "/opt/pypi",
        "/opt/wheels",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_CONSTRAINT",
        "PIP_CERT",
        "pip.conf",
        "--index-url",
    ):
        assert local not in text, local


def _build_command() -> list[str]:
    """The words of local-base.sh's `podman build` command (continuations joined)."""
    text = LOCAL_BASE.read_text().replace("\\\n", " ")
    builds = [line for line in text.splitlines() if re.search(r'"\$\{PODMAN\[@\]\}" build ', line)]
    assert len(builds) == 1, builds
    return shlex.split(builds[0].split("||")[0])


def test_the_local_proof_builds_the_image_stage_of_the_same_dockerfile():
    words = _build_command()
    _, _, stages = _dockerfile()
    assert words[words.index("-f") + 1] == "docker/Dockerfile"
    assert words[words.index("--target") + 1] == stages[-1].name == "workstation"
    build_args = [words[i + 1] for i, w in enumerate(words) if w == "--build-arg"]
    # the only difference from the real image: the project's steps start from the local base
    assert [a.partition("=")[0] for a in build_args] == ["PROJECT_BASE"]
    assert words[-1] == "."  # the checkout's root is the context, as for the real image
    assert not any(w.startswith("--env") or w == "-e" for w in words)  # nothing baked in


def test_local_base_sh_parses_and_refuses_clearly():
    assert os.access(LOCAL_BASE, os.X_OK)
    subprocess.run(["bash", "-n", str(LOCAL_BASE)], check=True)
    help_ = subprocess.run([str(LOCAL_BASE), "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--target workstation" in help_.stdout
    bad = subprocess.run([str(LOCAL_BASE), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--bogus'" in bad.stderr


def test_local_base_sh_outside_the_checkout_root_says_so(tmp_path):
    proc = subprocess.run([str(LOCAL_BASE)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "run it from the checkout's root" in proc.stderr


# the entrypoint --------------------------------------------------------------------------


def _fake_prefix(tmp_path: Path) -> Path:
    """A venv prefix whose bin/dojo prints its arguments and the ament prefix path."""
    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    dojo = prefix / "bin" / "dojo"
    dojo.write_text('#!/bin/sh\necho "dojo args: $*"\necho "ament: $AMENT_PREFIX_PATH"\n')
    dojo.chmod(0o755)
    return prefix


def _fake_ros(tmp_path: Path) -> Path:
    """A ROS 2 install: setup.bash puts a ros2 on PATH that reports being run."""
    ros = tmp_path / "ros"
    (ros / "bin").mkdir(parents=True)
    ros2 = ros / "bin" / "ros2"
    ros2.write_text('#!/bin/sh\necho "ros2 args: $* sourced=$FAKE_ROS_SOURCED"\n')
    ros2.chmod(0o755)
    setup = ros / "setup.bash"
    setup.write_text(f'export FAKE_ROS_SOURCED=1\nexport PATH="{ros}/bin:$PATH"\n')
    return setup


def _entrypoint(tmp_path: Path, *args: str, setup: Path | None, distro: str = "kilted"):
    env = {
        "PATH": "/usr/bin:/bin",  # no ros2 from this machine
        "ROS_DISTRO": distro,
        "VLA_DOJO_PREFIX": str(_fake_prefix(tmp_path)),
        "AMENT_PREFIX_PATH": "/opt/other",
    }
    if setup is not None:
        env["VLA_DOJO_ROS_SETUP"] = str(setup)
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_the_entrypoint_sources_ros_and_runs_ros2(tmp_path):
    proc = _entrypoint(
        tmp_path, "ros2", "launch", "vla_dojo", "dojo.launch.py", setup=_fake_ros(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ros2 args: launch vla_dojo dojo.launch.py sourced=1"
    assert proc.stderr == ""


def test_the_entrypoint_runs_dojo_from_the_venv_on_the_ament_prefix_path(tmp_path):
    proc = _entrypoint(tmp_path, "dojo", "run", "robot=so101", setup=_fake_ros(tmp_path))
    assert proc.returncode == 0, proc.stderr
    prefix = tmp_path / "venv"
    assert proc.stdout.splitlines() == ["dojo args: run robot=so101", f"ament: {prefix}:/opt/other"]


def test_the_entrypoint_without_ros_says_so_and_still_runs_dojo(tmp_path):
    missing = tmp_path / "no-ros" / "setup.bash"
    proc = _entrypoint(tmp_path, "dojo", "--help", setup=missing)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "dojo args: --help"
    assert "no ROS 2 here" in proc.stderr and str(missing) in proc.stderr
    other = _entrypoint(tmp_path, "sh", "-c", "echo plain", setup=missing)
    assert other.returncode == 0 and other.stdout == "plain\n"


def test_the_entrypoint_without_ros_refuses_ros2_with_the_reason(tmp_path):
    proc = _entrypoint(
        tmp_path, "ros2", "launch", "vla_dojo", "dojo.launch.py", setup=tmp_path / "absent.bash"
    )
    assert proc.returncode == 127
    assert "ros2 comes with ROS 2, which this image lacks" in proc.stderr


def test_the_entrypoint_looks_under_opt_ros_for_the_distro_by_default(tmp_path):
    proc = _entrypoint(tmp_path, "true", setup=None, distro="no-such-distro")
    assert proc.returncode == 0
    assert "/opt/ros/no-such-distro/setup.bash does not exist" in proc.stderr
