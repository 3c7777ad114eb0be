"""What every node process shares: reading the resolved config, spinning, shutting down.

Each node gets one parameter, ``config_file``: the resolved config that ``dojo run`` (or a
launch file) wrote with ``dojo.graph``. Reading the whole config, instead of dozens of flat
parameters, is what keeps ``dojo run`` and the launch files from drifting apart.
"""

from __future__ import annotations

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


def run_to_the_end(node: Node, run: Callable[[], None], finish: Callable[[], None], what: str):
    """Run a node's own logic (the episodes of a run) on a thread of its own, never in a
    callback: ``run()``, then ``finish()`` (write the outputs) whatever happened, then shut
    rclpy down, which ends the node and tells ``dojo run`` the run is over. A failure is logged
    as ``what failed: ...`` and sets the node's ``exit_code`` to 1."""

    def guarded() -> None:
        try:
            run()
        except Exception as err:
            node.get_logger().error(f"{what} failed: {err}")
            node.exit_code = 1
        finally:
            finish()
            rclpy.try_shutdown()

    thread = threading.Thread(target=guarded, name=what.replace(" ", "-"), daemon=True)
    thread.start()
    return thread


def spin_node(make_node: Callable[[], Node], *, threads: int = 1) -> int:
    """Create the node, spin it, shut down cleanly on SIGINT/TERM.

    ``threads=1`` (the default, and what every node uses) spins a SingleThreadedExecutor; work
    that must not block callbacks runs on a thread of the node's own (the driver's control
    loop, the recorder's writer). rclpy's MultiThreadedExecutor busy-waits, holding the GIL,
    whenever an entity is ready while its mutually exclusive group is busy: under load it
    starved the driver's control thread and the recorder's writer thread.

    Returns the process exit code: 0 on a clean stop, 1 when the node raised.
    """
    rclpy.init(args=sys.argv)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
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
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return getattr(node, "exit_code", code) or code
