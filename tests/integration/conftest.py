"""Real rclpy nodes in separate processes against the MuJoCo twin.

Every test gets its own ROS_DOMAIN_ID (so tests never hear each other), its own rclpy context in
this process, and waits only on conditions with a timeout.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from dojo.ros.env import FASTDDS_PROFILE, node_env

# This process's participant must use the same transport profile as the nodes under test.
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
os.environ.setdefault("MUJOCO_GL", "egl")

import rclpy
from rclpy.executors import SingleThreadedExecutor

from dojo import conf
from dojo.ros.topics import Service, Topic

pytestmark = pytest.mark.integration

_domains = itertools.count((os.getpid() * 7) % 100)
START_TIMEOUT = 60.0  # wall s for a node process to come up (imports MuJoCo, composes a scene)


def _next_domain() -> int:
    return 20 + next(_domains) % 200


@pytest.fixture
def domain_id() -> int:
    """A ROS_DOMAIN_ID of this test's own (20..219), never reused within a session."""
    return _next_domain()


@pytest.fixture(scope="module")
def module_domain_id() -> int:
    """A ROS_DOMAIN_ID for a graph that the tests of one module share (tests that only read
    from it); never reused within a session, nor shared with another module."""
    return _next_domain()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Probe:
    """A node in the test process that records what arrives and publishes test commands."""

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("probe", context=self.context)
        self.lock = threading.Lock()
        self.messages: dict[str, list] = defaultdict(list)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self.context.ok():
                    return
                raise

    def record(self, topic: Topic) -> None:
        """Keep every message on ``topic`` (with the QoS the nodes use for it)."""

        def cb(msg, name=topic.name):
            with self.lock:
                self.messages[name].append(msg)

        topic.subscription(self.node, cb)

    def got(self, topic: Topic) -> list:
        with self.lock:
            return list(self.messages[topic.name])

    def clear(self, topic: Topic) -> None:
        with self.lock:
            self.messages[topic.name].clear()

    def call(self, service: Service, request, timeout: float = 20.0):
        client = service.client(self.node)
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {service.name} did not appear within {timeout} s")
        future = client.call_async(request)
        wait_until(future.done, timeout, f"a response from {service.name}")
        return future.result()

    def close(self) -> None:
        # Shut the context down first: that wakes the spinning thread, which then returns; a
        # node destroyed under a thread still waiting on it can block in rcl.
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            raise AssertionError("the probe's spin thread did not stop within 5 s of shutdown")
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()


@pytest.fixture
def probe(domain_id):
    p = Probe(domain_id)
    yield p
    p.close()


class NodeProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._fh.close()
        return self.proc.returncode


def _node_starter(domain_id: int, tmp_path: Path, started: list[NodeProcess]):
    """``start(module, overrides, name, **params)``: a node process on ``domain_id`` with a
    config composed from ``overrides``, appended to ``started``."""

    def start(module: str, overrides: list[str], name: str, **params) -> NodeProcess:
        cfg = conf.load([*overrides, f"out={tmp_path}"])
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(conf.to_yaml(cfg))
        args = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}"]
        args += ["-p", f"config_file:={config_file}"]
        for key, value in params.items():
            value = str(value).lower() if isinstance(value, bool) else value
            args += ["-p", f"{key}:={value}"]
        node = NodeProcess(args, node_env(domain_id), tmp_path / f"{name}.log")
        started.append(node)
        return node

    return start


@pytest.fixture
def start_node(domain_id, tmp_path):
    """Start a node module with a config composed from overrides; stopped after the test."""
    started: list[NodeProcess] = []
    yield _node_starter(domain_id, tmp_path, started)
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def module_probe(module_domain_id):
    """A probe on the module's shared domain (:func:`module_domain_id`)."""
    p = Probe(module_domain_id)
    yield p
    p.close()


@pytest.fixture(scope="module")
def module_start_node(module_domain_id, tmp_path_factory):
    """:func:`start_node` for a graph the module's tests share; stopped after the module."""
    started: list[NodeProcess] = []
    yield _node_starter(module_domain_id, tmp_path_factory.mktemp("graph"), started)
    for node in started:
        node.stop()


def dump_logs_on_failure(nodes: list[NodeProcess]) -> str:
    return "\n".join(f"--- {n.log.name}\n{n.output()[-4000:]}" for n in nodes)
