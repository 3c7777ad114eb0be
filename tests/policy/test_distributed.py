"""Several training processes: disjoint batches, one stop for all, one writer.

The two-process test runs the real launcher (``accelerate launch --multi_gpu --num_processes
2``, which starts CPU processes over gloo where there is no GPU) on this module: its
``__main__`` block is the training script, and each process reports what it saw in a JSON file.
Process 1's clock runs four times fast, so a trainer that judged the time budget on each
process's own clock would stop it long before process 0, and process 0 would wait forever in
the next gradient all-reduce (the subprocess timeout turns that hang into a failure).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from policy.distributed import AgreedBudget, Processes, ShardedSampler, process_rng
from policy.schedule import Budget

REPO = Path(__file__).resolve().parents[2]
FAST_CLOCK = 4.0  # process 1's clock runs this many times faster than process 0's
RUN_TIMEOUT_S = 120.0
WORKER_DEADLINE_S = RUN_TIMEOUT_S + 10.0


def test_each_process_draws_from_its_own_rows_only():
    n = 101
    drawn = []
    for rank in range(3):
        procs = Processes(rank, 3)
        sampler = ShardedSampler(n, procs)
        rows = sampler.sample(process_rng(0, procs), 2000)
        assert set(rows) == set(range(rank, n, 3))  # all of its shard, nothing else
        drawn.append(set(rows))
    assert not (drawn[0] & drawn[1] or drawn[0] & drawn[2] or drawn[1] & drawn[2])
    assert set().union(*drawn) == set(range(n))


def test_weights_are_kept_per_shard():
    w = np.ones(40)
    w[::4] = 0.0  # rows 0, 4, 8, ... are never drawn
    for rank in range(2):
        procs = Processes(rank, 2)
        rows = ShardedSampler(40, procs, w).sample(process_rng(0, procs), 3000)
        assert rows.min() >= 0 and not np.any(rows % 4 == 0) and np.all(rows % 2 == rank)


def test_one_process_draws_exactly_as_before():
    """A single-process run keeps the draws (and so the results) it had without sharding."""
    one = Processes()
    got = ShardedSampler(50, one).sample(process_rng(7, one), 16)
    np.testing.assert_array_equal(got, np.random.default_rng(7).integers(0, 50, 16))
    p = np.linspace(1.0, 2.0, 50)
    got = ShardedSampler(50, one, p).sample(process_rng(7, one), 16)
    want = np.random.default_rng(7).choice(50, size=16, p=p / p.sum())
    np.testing.assert_array_equal(got, want)


def test_streams_differ_between_processes_and_after_a_resume():
    a, b = (process_rng(0, Processes(r, 2)).integers(0, 1 << 30, 4) for r in range(2))
    assert not np.array_equal(a, b)
    again = process_rng(0, Processes(0, 2), 100).integers(0, 1 << 30, 4)
    assert not np.array_equal(a, again)


def test_impossible_sharding_is_refused():
    with pytest.raises(ValueError, match="3 rows cannot be shared by 4 processes"):
        ShardedSampler(3, Processes(0, 4))
    with pytest.raises(ValueError, match="rank=2"):
        Processes(2, 2)
    with pytest.raises(ValueError, match="all weigh 0"):
        ShardedSampler(4, Processes(1, 2), np.array([1.0, 0.0, 1.0, 0.0]))


def test_one_process_budget_is_the_plain_budget():
    agreed = AgreedBudget(Budget(steps=5, seconds=2.0), Processes())
    assert agreed.check(4, 1.0).stop is None and agreed.check(4, 1.0).elapsed == 1.0
    assert agreed.check(5, 0.0).stop == "steps" and agreed.check(1, 2.5).stop == "seconds"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_two_processes_train_on_disjoint_batches_and_stop_together(learnable_store, tmp_path):
    """SFT and the critic's trainer, each in the same two launched processes."""
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "ACCELERATE_USE_CPU": "true",  # CPU processes over gloo even where a GPU is present
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "tests.policy.test_distributed",
        learnable_store.url,
        str(out),
        str(results),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a hung run is ended as a whole
    )
    try:
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the launcher ends its workers on SIGTERM
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        pytest.fail(f"the two-process run did not end in {RUN_TIMEOUT_S} s (one left waiting?)")
    assert proc.returncode == 0, stderr[-4000:]
    reports = [json.loads((results / f"rank{r}.json").read_text()) for r in range(2)]
    main, other = reports
    assert main["world"] == other["world"] == 2
    # disjoint data: no row drawn by both processes, and both trained
    rows = [{r for batch in rep["rows"] for r in batch} for rep in reports]
    assert rows[0] and rows[1] and not rows[0] & rows[1]
    # one stop for both, on the main process's clock: process 1 alone would have stopped at
    # a quarter of the run
    assert main["stopped_by"] == other["stopped_by"] == "seconds"
    assert main["steps"] == other["steps"] == len(main["rows"]) == len(other["rows"]) >= 4
    assert other["own_clock_said_stop_at"] is not None
    assert other["own_clock_said_stop_at"] < 0.5 * main["steps"]
    # the same learning rate on both, so the replicas' weights are identical
    assert main["lrs"] == other["lrs"]
    assert main["weights"] == other["weights"]
    # only the main process writes and evaluates, each evaluation once
    assert other["checkpoint_writes"] == [] and other["evaluations"] == []
    every_third = list(range(3, main["steps"] + 1, 3))
    at_the_end = [] if main["steps"] % 3 == 0 else [main["steps"]]
    assert main["evaluations"] == every_third + at_the_end
    assert main["checkpoint_writes"]
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == main["steps"]
    assert (out / "checkpoint" / "config.json").exists()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    # the critic's trainer: other pairs on each process, the same steps and weights, one writer
    critic_main, critic_other = main["critic"], other["critic"]
    assert critic_main["steps"] == critic_other["steps"] >= 2
    assert critic_main["first_pairs"] != critic_other["first_pairs"]
    assert critic_main["weights"] == critic_other["weights"]
    assert critic_other["saves"] == [] and critic_main["saves"] == [str(out / "critic")]
    assert critic_main["critic_id"] == critic_other["critic_id"] != ""


def _worker(store: str, out: str, results: str) -> None:
    """One of the launched training processes (see the module docstring)."""
    import policy.train as train_module
    from policy.config import PolicyTrainConfig, VLAConfig
    from policy.train import Trainer
    from tests.critic.conftest import FakeText
    from tests.policy.conftest import JOINTS, tiny_model_overrides

    rank = int(os.environ["RANK"])
    # a process left waiting never outlives the test, even if its launcher is killed
    deadline = threading.Timer(WORKER_DEADLINE_S, os._exit, (3,))
    deadline.daemon = True
    deadline.start()
    writes: list[str] = []
    save_checkpoint = train_module.save_checkpoint

    def recording_save(model, path, trained=None):
        writes.append(Path(path).name)
        return save_checkpoint(model, path, trained)

    train_module.save_checkpoint = recording_save
    t0 = time.monotonic()
    speed = FAST_CLOCK if rank == 1 else 1.0
    seconds = 2.0
    cfg = PolicyTrainConfig(
        stores=[store],
        out=out,
        batch_size=8,
        steps=100_000,
        seconds=seconds,
        warmup=2,
        augment_pad=0,
        log_every=5,
        checkpoint_every=4,
        eval_every=3,
        progress=False,
        threads=1,
        model=VLAConfig(**tiny_model_overrides()),
    )
    evaluations: list[int] = []
    trainer = None

    def evaluate(checkpoint: Path) -> dict:
        evaluations.append(trainer.step)
        return {"success_rate": 0.5}

    trainer = Trainer(
        cfg,
        joint_names=JOINTS,
        cameras=["front", "wrist"],
        evaluate=evaluate,
        text=FakeText(),
        clock=lambda: t0 + speed * (time.monotonic() - t0),
    )
    seen: list[list[int]] = []
    lrs: list[float] = []
    own_stop: list[int] = []
    batch = trainer.data.batch
    start = trainer.clock()

    def recording_batch(rows):
        seen.append([int(r) for r in rows])
        if not own_stop and trainer.clock() - start >= seconds:
            own_stop.append(trainer.step)  # where this process's own clock would have stopped
        return batch(rows)

    trainer.data.batch = recording_batch
    step = trainer.opt.step

    def recording_step(*args, **kwargs):
        lrs.append(trainer.opt.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.opt.step = recording_step
    summary = trainer.run()
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer._unwrapped().state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    report = {
        "rank": rank,
        "world": trainer.procs.world,
        "rows": seen,
        "steps": summary["steps"],
        "stopped_by": summary["stopped_by"],
        "own_clock_said_stop_at": own_stop[0] if own_stop else None,
        "lrs": lrs,
        "weights": digest.hexdigest(),
        "checkpoint_writes": writes,
        "evaluations": evaluations,
    }
    report["critic"] = _critic_worker(store, str(Path(out) / "critic"))
    Path(results, f"rank{rank}.json").write_text(json.dumps(report))


def _critic_worker(store: str, out: str) -> dict:
    """The critic's trainer in the same processes: what each drew, how far it went, what it
    wrote, and the weights it ended with."""
    from critic.config import CriticTrainConfig
    from critic.models.compact import CompactCritic
    from critic.pairs import PairSampler
    from critic.train import train
    from tests.critic.conftest import FakeText

    drawn: list[list[int]] = []
    sample = PairSampler.sample

    def recording_sample(self, n):
        batch = sample(self, n)
        drawn.append([int(i) for i in batch.ia] + [int(i) for i in batch.ib])
        return batch

    PairSampler.sample = recording_sample
    saves: list[str] = []
    save = CompactCritic.save

    def recording_save(self, directory, extra=None):
        saves.append(str(directory))
        return save(self, directory, extra)

    CompactCritic.save = recording_save
    cfg = CriticTrainConfig(
        stores=[store],
        out=out,
        cameras=["front"],
        image_size=[32, 40],
        embed_dim=32,
        ref_frames=4,
        widths=[8, 8],
        steps=100_000,
        seconds=1.0,
        batch_size=8,
        ref_batch=4,  # the reference head takes part in some batches only
        warmup=2,
        threads=1,
    )
    critic = train(cfg, text_encoder=FakeText(), progress=False)
    digest = hashlib.sha256()
    for name, tensor in sorted(critic.net.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return {
        "steps": len(drawn),
        "first_pairs": drawn[:5],
        "weights": digest.hexdigest(),
        "saves": saves,
        "critic_id": critic.critic_id,
    }


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
