"""What every node process shares: reading the resolved config, spinning, shutting down.

Each node gets one parameter, ``config_file``: the resolved config that ``dojo run`` (or a
launch file) wrote with ``dojo.graph``. Reading the whole config, instead of dozens of flat
parameters, is what keeps ``dojo run`` and the launch files from drifting apart.

Every node dies with whatever started it (``dojo run``, ``ros2 launch``): a node left behind by
a crashed supervisor is a process still able to command the arm. :func:`die_with_parent` asks
the kernel for SIGTERM when the parent dies (``PR_SET_PDEATHSIG``) and watches the parent as
well, ending the process within :data:`PARENT_DEATH_EXIT_S` whatever it was doing. SIGTERM is
left to rclpy's own handler, which wakes the executor: a Python-level handler only runs once
the main thread returns from ``rcl_wait``, and an idle node never does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable

import rclpy
from omegaconf import DictConfig
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

from dojo import conf


def node_config(node: Node) -> DictConfig:
    """The resolved config named by the node's ``config_file`` parameter, validated."""
    if not node.has_parameter("config_file"):
        node.declare_parameter("config_file", "")
    path = node.get_parameter("config_file").get_parameter_value().string_value
    if not path:
        raise conf.ConfigError(f"node '{node.get_name()}': parameter 'config_file' is not set")
    cfg = conf.from_yaml_file(path)
    conf.validate(cfg)
    return cfg


def wait_until(
    done: Callable[[], bool], timeout_s: float, failure: Callable[[], str], poll_s: float = 0.01
) -> None:
    """Wait, on a node's own thread (never in a callback), until ``done()``; ``RuntimeError``
    with ``failure()`` (built then, so it can show the latest value) after ``timeout_s`` wall
    seconds or once rclpy shuts down."""
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end or not rclpy.ok():
            raise RuntimeError(failure())
        time.sleep(poll_s)


def ros_time(node: Node) -> float:
    """The node's clock in seconds: ROS time, so sim time next to the twin."""
    return node.get_clock().now().nanoseconds * 1e-9


def wait_for_services(clients: Iterable, timeout_s: float) -> None:
    """Wait (bounded) until every client's service is offered; ``RuntimeError`` naming the
    first that is not."""
    for client in clients:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f"service {client.srv_name} did not appear within {timeout_s:.0f} s")


RUN_FINISH_S = 4.0
"""Wall seconds a stopping node waits for its run thread to write its outputs: inside the
5 s that ``ros2 launch`` and ``dojo run`` give a process between SIGINT and SIGTERM."""


def run_to_the_end(node: Node, run: Callable[[], None], finish: Callable[[], None], what: str):
    """Run a node's own logic (the episodes of a run) on a thread of its own, never in a
    callback: ``run()``, then ``finish()`` (write the outputs) whatever happened, then shut
    rclpy down, which ends the node and tells ``dojo run`` the run is over. A failure is logged
    as ``what failed: ...`` and sets the node's ``exit_code`` to 1.

    An error raised once the node's context has been shut down from outside (SIGINT from
    ``ros2 launch``, Ctrl-C) is the stop, not a failure: every bounded wait ends with an error
    when rclpy shuts down, and a run stopped on purpose exits 0 with its outputs written.
    The thread is kept as ``node.run_thread`` (and returned): :func:`spin_node` waits for it
    (:data:`RUN_FINISH_S`) as the node stops, so the outputs are not cut off mid-write."""

    name = node.get_name()  # a shut-down context may already have destroyed the node's handle

    def guarded() -> None:
        try:
            run()
        except Exception as err:
            if rclpy.ok(context=node.context):
                node.get_logger().error(f"{what} failed: {err}")
                node.exit_code = 1
            else:
                print(f"[{name}] {what} stopped by shutdown ({err})", file=sys.stderr)
        finally:
            finish()
            rclpy.try_shutdown(context=node.context)

    thread = threading.Thread(target=guarded, name=what.replace(" ", "-"), daemon=True)
    node.run_thread = thread
    thread.start()
    return thread


PARENT_WATCH_S = 0.1
PARENT_DEATH_EXIT_S = 0.5
"""Wall seconds from noticing the parent's death to the hard exit: time enough for the clean
path (the driver holds the arm, then closes it), and within the second the graph promises."""
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> threading.Thread | None:
    """End this process when its parent dies: SIGTERM from the kernel (Linux), and a watch
    thread that shuts rclpy down on seeing a new parent and exits hard
    :data:`PARENT_DEATH_EXIT_S` later if the clean path has not finished.

    ``parent``: the pid expected as the parent (default: the current one). A process whose
    parent is already gone (adopted by init) exits at once with status 1."""
    parent = os.getppid() if parent is None else parent
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent <= 1 or os.getppid() != parent:  # orphaned before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_WATCH_S)
        print(
            f"[{os.getpid()}] parent {parent} died: stopping within {PARENT_DEATH_EXIT_S} s",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(Exception):
            rclpy.try_shutdown()
        time.sleep(PARENT_DEATH_EXIT_S)
        os._exit(1)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def spin_node(make_node: Callable[[], Node], *, threads: int = 1) -> int:
    """Create the node, spin it, shut down cleanly on SIGINT/TERM.

    ``threads=1`` (the default, and what every node uses) spins a SingleThreadedExecutor; work
    that must not block callbacks runs on a thread of the node's own (the driver's control
    loop, the recorder's writer). rclpy's MultiThreadedExecutor busy-waits, holding the GIL,
    whenever an entity is ready while its mutually exclusive group is busy: under load it
    starved the driver's control thread and the recorder's writer thread.

    SIGINT and SIGTERM are rclpy's (its handler shuts the context down and wakes the
    executor); the node dies with its parent (:func:`die_with_parent`).

    Returns the process exit code: 0 on a clean stop, 1 when the node raised.
    """
    die_with_parent()
    rclpy.init(args=sys.argv)
    node = None
    code = 0
    try:
        node = make_node()
        executor = (
            SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads)
        )
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:  # a node that dies says why, then the supervisor reports it
        print(f"[{getattr(node, 'get_name', lambda: '?')()}] fatal: {err}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            run_thread = getattr(node, "run_thread", None)
            if run_thread is not None:  # a run stopped from outside still writes its outputs
                run_thread.join(timeout=RUN_FINISH_S)
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return getattr(node, "exit_code", code) or code
