"""``operator_console``: the person's episodes in ``dojo record`` (the ROS shell of
``dojo.console.session``).

In the graph instead of ``episode_runner`` whenever the person is real
(``intervention.device`` is a teleop device, not ``scripted``): the person, not a timer or the
twin's success check, decides when an episode ends.

    subscribes  task/instruction, recorder/status, intervention/active, intervention/button,
                task/success (twin)
    calls       sim/reset (twin), episode/start, episode/stop, episode/abort (with a store)

It prints the device's keys once, then keeps two lines in view on its standard output, which
``dojo run`` shares with the terminal: the status (episode n/N, ROS time since the episode
began, who is in control, steps written and dropped, the instruction) and what to press now.
It reads no terminal: the keys reach it as ``intervention/button`` from the intervention node
(or from anything else that publishes there, e.g. ``ros2 topic pub`` for a leader arm, which
has no buttons).

After ``episodes`` episodes ended with a verdict it writes ``<out>/episodes.json`` and exits 0,
so ``dojo run`` stops the graph (or, started by ``dojo console`` beside a launch file, the
launch sees it leave and stops). Once it has seen the graph's driver (a ``driver/status``
publisher), a driver gone for :data:`DRIVER_GONE_S` ends it with exit status 1: a console left
over from a stopped or crashed launch would otherwise join the next graph on the same domain
and hand it the person's old session. The episode logic runs on its own thread that waits only on a
queue with a timeout and on service replies with a deadline; callbacks only queue what arrived,
so one executor thread is enough.
"""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from std_srvs.srv import SetBool, Trigger

from dojo.console.display import StatusDisplay
from dojo.console.session import Console, Op, Request, button_labels
from dojo.nodes.base import (
    node_config,
    ros_time,
    run_to_the_end,
    spin_node,
    wait_for_services,
    wait_until,
)
from dojo.ros import topics

SERVICE_WAIT_S = 60.0  # wall s for the driver and the recorder to come up
DRAW_S = 0.1  # wall s between redraws of the status line
REPLY_WAIT_S = {  # wall s for each service to answer (episode/stop commits: up to 120 s)
    Op.RESET_SCENE: 30.0,
    Op.START: 30.0,
    Op.STOP: 150.0,
    Op.ABORT: 150.0,
}
EVENTS_MAX = 1000
DRIVER_GONE_S = 3.0  # wall s without a driver/status publisher, once one was seen
SERVICES = {  # what each request of the console calls
    Op.RESET_SCENE: topics.SIM_RESET,
    Op.START: topics.EPISODE_START,
    Op.STOP: topics.EPISODE_STOP,
    Op.ABORT: topics.EPISODE_ABORT,
}


class OperatorConsoleNode(Node):
    def __init__(self) -> None:
        super().__init__("operator_console")
        cfg = node_config(self)
        self._out = Path(cfg.out)
        self._out.mkdir(parents=True, exist_ok=True)
        self._sim = cfg.robot.driver == "sim"
        self._record = bool(cfg.store)
        icfg = cfg.intervention
        device = str(icfg.device)
        from teleop.registry import make_device

        person = make_device(device, **dict(icfg.device_config))  # no I/O: for its help only
        self._help = person.help()
        self._console = Console(
            int(cfg.episodes),
            sim=self._sim,
            record=self._record,
            duration=float(cfg.duration),
            labels=button_labels(device, getattr(person, "config", None)),
        )
        self._display = StatusDisplay(sys.stdout)
        self._events: queue.Queue = queue.Queue(maxsize=EVENTS_MAX)
        self.exit_code = 0

        def put(kind: str):
            def cb(msg) -> None:
                try:
                    self._events.put_nowait((kind, msg.data))
                except queue.Full:
                    self.get_logger().warning(f"console busy: {kind} '{msg.data}' dropped")

            return cb

        topics.TASK_INSTRUCTION.subscription(self, put("instruction"))
        topics.RECORDER_STATUS.subscription(self, put("status"))
        topics.INTERVENTION_ACTIVE.subscription(self, put("active"))
        topics.INTERVENTION_BUTTON.subscription(self, put("button"))
        if self._sim:
            topics.TASK_SUCCESS.subscription(self, put("success"))
        ops = ([Op.RESET_SCENE] if self._sim else []) + (
            [Op.START, Op.STOP, Op.ABORT] if self._record else []
        )
        self._calls = {op: SERVICES[op].client(self) for op in ops}
        run_to_the_end(self, self._run, self._write_summary, "operator console")

    def close(self) -> None:
        self._display.close()

    def _now(self) -> float:
        return ros_time(self)

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        wait_for_services(self._calls.values(), SERVICE_WAIT_S)
        # The person's keys reach this node as intervention/button; a press sent before that
        # topic is matched is lost, so the prompt appears only once it is.
        buttons = topics.INTERVENTION_BUTTON.name
        wait_until(
            lambda: self.count_publishers(buttons) > 0,
            SERVICE_WAIT_S,
            lambda: (
                f"nothing publishes {buttons} after {SERVICE_WAIT_S:.0f} s: "
                "is the intervention node running?"
            ),
            poll_s=0.05,
        )
        early: list[tuple[str, object]] = []
        while True:  # buttons pressed before the console was ready are not acted on
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "button":
                self.get_logger().info(f"'{event[1]}' pressed before the console was ready")
            else:
                early.append(event)
        self._display.event(self._help)
        console = self._console
        pending: tuple[Request, object, float] | None = None
        next_draw = 0.0
        driver_seen: float | None = None  # wall time a driver/status publisher was last there
        while rclpy.ok():
            if self.count_publishers(topics.DRIVER_STATUS.name) > 0:
                driver_seen = time.monotonic()
            elif driver_seen is not None and time.monotonic() - driver_seen > DRIVER_GONE_S:
                raise RuntimeError(
                    f"the graph's robot_driver has gone (nothing has published "
                    f"{topics.DRIVER_STATUS.name} for {DRIVER_GONE_S:.0f} s): the console stops"
                )
            requests: list[Request] = []
            try:
                kind, value = early.pop(0) if early else self._events.get(timeout=DRAW_S)
            except queue.Empty:
                kind, value = "", None
            now = self._now()
            if kind == "button":
                requests += console.button(value, now)
            elif kind == "instruction":
                console.instruction(value)
            elif kind == "status":
                try:
                    requests += console.recorder_status(json.loads(value), now)
                except ValueError:
                    self.get_logger().warning(
                        f"{topics.RECORDER_STATUS.name} is not JSON: {value[:80]!r}"
                    )
            elif kind == "active":
                console.person_active(value)
            elif kind == "success":
                console.task_success(value)
            requests += console.tick(now)
            if pending is not None:
                request, future, deadline = pending
                if future.done():
                    pending = None
                    response = future.result()
                    requests += console.done(request, response.success, response.message, now)
                elif time.monotonic() > deadline:
                    pending = None
                    wait = REPLY_WAIT_S[request.op]
                    requests += console.done(
                        request,
                        False,
                        f"{request.op.value} did not answer within {wait:.0f} s",
                        now,
                    )
            for request in requests:
                if request.op is Op.FINISH:
                    continue
                if pending is not None:
                    raise RuntimeError(f"{request} while {pending[0]} is in flight")
                pending = (
                    request,
                    self._send(request),
                    time.monotonic() + REPLY_WAIT_S[request.op],
                )
            for message in console.take_messages():  # on the terminal; not again as a log line
                self._display.event(message)
            if console.finished and pending is None:
                self._display.status(console.status_lines(now), console.status_lines(None))
                return
            if time.monotonic() >= next_draw:
                self._display.status(console.status_lines(now), console.status_lines(None))
                next_draw = time.monotonic() + DRAW_S

    def _send(self, request: Request):
        client = self._calls[request.op]
        if request.op is Op.STOP:
            return client.call_async(SetBool.Request(data=request.success))
        return client.call_async(Trigger.Request())

    def _write_summary(self) -> None:
        summary = self._console.summary()
        path = self._out / "episodes.json"
        path.write_text(json.dumps(summary, indent=2) + "\n")
        self.get_logger().info(f"wrote {path}: {summary['succeeded']}/{summary['total']} succeeded")


def main() -> None:
    raise SystemExit(spin_node(OperatorConsoleNode, threads=1))


if __name__ == "__main__":
    main()
