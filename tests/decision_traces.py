"""Every decision of the three controllers on fixed loss streams, recorded and replayed.

`python tests/decision_traces.py` runs each case of `CASES` in closed loop against a
small simulated network (its loss depends on the learning rates the controller gives
it, and a restore puts its "weights" back), and writes what the controller did to
tests/data/decision_traces.json: the losses it was given, in the chunks it was given
them, and after each chunk the requests, the next step's learning rate and a digest of
the whole learning-rate table; the messages it printed, and its final state.

`tests/test_decision_traces.py` feeds the same losses, in the same chunks, to today's
controllers and compares every one of those to the bit: a refactor that changes a
decision fails it. Record again only for a change of behaviour made on purpose.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import sys
import warnings

import numpy as np

PATH = os.path.join(os.path.dirname(__file__), "data", "decision_traces.json")
# The NumPy the traces were recorded with: its exp and log may differ from another
# version's in the last bit, so only there is every float compared to the bit.
RECORDED_WITH_NUMPY = "2.4.6"


class SimulatedNetwork:
    """A loss that falls with the learning rate's work below `limit` and blows up above it.

    `progress` stands for the weights: a snapshot copies it, a restore puts it back.
    """

    def __init__(self, limit, seed, noise=0.03, start=2.3, floor=0.05, blow_up=0.05, nan_at=1e6, sharpen_at=None, sharpen=10.0):
        self.limit, self.noise, self.start, self.floor = limit, noise, start, floor
        self.blow_up, self.nan_at = blow_up, nan_at
        self.sharpen_at, self.sharpen = sharpen_at, sharpen
        self.rng = np.random.default_rng(seed)
        self.progress, self.excess, self.steps = 0.0, 0.0, 0
        self.snapshots = {}

    def step(self, learning_rate):
        limit = self.limit
        if self.sharpen_at is not None and self.steps >= self.sharpen_at:
            limit /= self.sharpen  # the stable learning rates shrink later in the run
        self.steps += 1
        if learning_rate <= limit:
            self.progress += 0.02 * learning_rate / limit
            self.excess = max(0.0, self.excess * 0.7 - 1e-3)
        else:
            self.excess += self.blow_up * (learning_rate / limit - 1.0) * (1.0 + self.excess)
        loss = self.floor + (self.start - self.floor) * math.exp(-self.progress) + self.excess
        loss *= 1.0 + self.noise * self.rng.standard_normal()
        return math.nan if not math.isfinite(loss) or loss > self.nan_at else loss

    def carry_out(self, request):
        kind, step = request[0], request[1]
        if kind == "snapshot":
            self.snapshots[step] = self.snapshots["last"] = (self.progress, self.excess)
        elif kind == "discard":
            self.snapshots.pop(step, None)
        elif kind == "restore":  # AutoLRS's name the step they happen at: the last snapshot
            self.progress, self.excess = self.snapshots.get(step, self.snapshots.get("last", (self.progress, self.excess)))


def _digest(values):
    return hashlib.sha256(np.ascontiguousarray(values, np.float64).tobytes()).hexdigest()[:16]


def _plain_requests(requests):
    """[kind, step], and a restore's velocity scale where the controller sets one."""
    out = []
    for r in requests:
        item = [str(r[0]), int(r[1])]
        if len(r) > 2 and r[2] is not None and r[0] == "restore":
            item.append(float(r[2]))
        out.append(item)
    return out


@contextlib.contextmanager
def _captured():
    """stdout and warnings, as lists of lines."""
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        lines = []
        yield lines
    lines.extend(printed.getvalue().splitlines())
    lines.extend(f"{w.category.__name__}: {w.message}" for w in caught)


# ---------------------------------------------------------------------------------
# AutoWU


# Arguments of 0.2.0 that are now fields of `Departures` (not the public API).
_DEPARTURES = ("flat_start_speedup", "min_progress", "min_rise", "handover_trial")


def autowu_scheduler(case):
    import keras_autowu
    from keras_autowu.autowu.config import Departures

    kwargs = dict(case.get("kwargs", {}))
    departures = {name: kwargs.pop(name) for name in _DEPARTURES if name in kwargs}
    return keras_autowu.AutoWUScheduler(
        case["steps_per_epoch"], case["epochs"], case.get("steps_per_execution", 1),
        case.get("velocity_momentum", 0.0), departures=Departures(**departures) if departures else None, **kwargs
    )


def autowu_boundary(scheduler):
    """Where the Keras callback hands the losses over: the next decision or epoch end."""
    done = scheduler.steps_done
    epoch_end = (done // scheduler.steps_per_epoch + 1) * scheduler.steps_per_epoch
    return min(scheduler.next_decision_step(), epoch_end, scheduler.total_steps)


def autowu_observe(scheduler, losses):
    return scheduler.observe(losses)


def autowu_table(scheduler):
    return scheduler.learning_rates(0, scheduler.total_steps + 1)


def autowu_resume(scheduler, fresh):
    return fresh.set_state(scheduler.get_state())


def autowu_summary(scheduler):
    return {
        "switch": None if scheduler.switch is None else [scheduler.switch.step, scheduler.switch.handover_lr],
        "rescues": [[r.step, r.learning_rate, r.restore_step] for r in scheduler.rescues],
        "tests": [[t.step, bool(t.positive)] for t in scheduler.tests],
        "phase": scheduler.phase,
    }


def record_autowu(case, chunks=None):
    """The trace of one AutoWU case; with `chunks` (a recorded trace's), a replay."""
    with _captured() as messages:
        scheduler = autowu_scheduler(case)
    net = SimulatedNetwork(case["limit"], case["seed"], **case.get("network", {}))
    trace = {"chunks": [], "steps": [], "requests": [], "next_lr": [], "table": []}
    resume_at = case.get("resume_at")
    index = 0
    with _captured() as run_messages:
        while scheduler.steps_done < scheduler.total_steps:
            if chunks is None:
                stop = autowu_boundary(scheduler)
                table = autowu_table(scheduler)
                losses = [net.step(float(table[s])) for s in range(scheduler.steps_done, stop)]
            else:
                if index >= len(chunks):
                    break
                losses = chunks[index]
            index += 1
            requests = autowu_observe(scheduler, losses)
            if resume_at is not None and scheduler.steps_done >= resume_at:
                resume_at = None
                fresh = autowu_scheduler(case)
                requests = requests + [("resume", -1)] + list(autowu_resume(scheduler, fresh))
                scheduler = fresh
            if chunks is None:
                for request in requests:
                    net.carry_out(request)
            trace["chunks"].append([float(v) for v in losses])
            trace["steps"].append(int(scheduler.steps_done))
            trace["requests"].append(_plain_requests(requests))
            trace["next_lr"].append(float(autowu_table(scheduler)[scheduler.steps_done]))
            trace["table"].append(_digest(autowu_table(scheduler)))
    trace["final_table"] = [float(v) for v in autowu_table(scheduler)]
    trace["messages"] = messages + run_messages
    trace["summary"] = autowu_summary(scheduler)
    return trace


# ---------------------------------------------------------------------------------
# Factor search


def factor_search_scheduler(case):
    import keras_autowu

    return keras_autowu.FactorSearchScheduler(case["steps_per_epoch"], case["epochs"], learning_rate=case["learning_rate"], **case.get("kwargs", {}))


def record_factor_search(case, chunks=None):
    """Closed loop: at each update, probes at each factor times the learning rate."""
    with _captured() as messages:
        scheduler = factor_search_scheduler(case)
    net = SimulatedNetwork(case["limit"], case["seed"], **case.get("network", {}))
    trace = {"chunks": [], "steps": [], "requests": [], "next_lr": [], "table": []}
    resume_at = case.get("resume_at")
    index = 0
    with _captured() as run_messages:
        for step in range(scheduler.total_steps):
            if step == scheduler.next_boundary():
                if chunks is None:
                    saved = (net.progress, net.excess)
                    base = net.step(0.0)
                    probes = []
                    for f in scheduler.factors:
                        net.progress, net.excess = saved
                        probes.append(net.step(f * scheduler.learning_rate))
                    net.progress, net.excess = saved
                    observed = [base] + probes
                else:
                    observed = chunks[index]
                index += 1
                requests = scheduler.observe([], probe=(step, observed[1:], observed[0]))
                if resume_at is not None and step >= resume_at:
                    resume_at = None
                    fresh = factor_search_scheduler(case)
                    fresh.set_state(scheduler.get_state())
                    requests = requests + [("resume", -1)]
                    scheduler = fresh
                if chunks is None:
                    for request in requests:
                        net.carry_out(request)
                trace["chunks"].append([float(v) for v in observed])
                trace["steps"].append(step)
                trace["requests"].append(_plain_requests(requests))
                trace["next_lr"].append(float(scheduler.learning_rate))
            if chunks is None:
                net.step(scheduler.learning_rate)
    trace["messages"] = messages + run_messages
    trace["summary"] = {"updates": [[u.step, u.learning_rate, u.kind] for u in scheduler.updates]}
    return trace


# ---------------------------------------------------------------------------------
# AutoLRS


def autolrs_scheduler(case):
    import keras_autowu

    return keras_autowu.AutoLRSScheduler(case["total_steps"], case["learning_rate"], case.get("steps_per_execution", 1), **case.get("kwargs", {}))


def record_autolrs(case, chunks=None):
    with _captured() as messages:
        scheduler = autolrs_scheduler(case)
    net = SimulatedNetwork(case["limit"], case["seed"], **case.get("network", {}))
    trace = {"chunks": [], "steps": [], "requests": [], "next_lr": [], "table": []}
    resume_at = case.get("resume_at")
    step, index, pending = 0, 0, []
    with _captured() as run_messages:
        while True:
            boundary = scheduler.next_boundary()
            if chunks is None:
                stop = min(boundary, scheduler.total_steps)
                rates = scheduler.learning_rates(step, stop)
                pending = pending + [net.step(float(lr)) for lr in rates]
                step = stop
                losses = pending
            else:
                if index >= len(chunks):
                    break
                step, losses = chunks[index]
            index += 1
            requests = scheduler.observe(losses)
            assert scheduler.steps_done == step
            if chunks is None:
                for request in requests:
                    net.carry_out(request)
            trace["chunks"].append([step, [float(v) for v in losses]])
            pending = []
            if resume_at is not None and step >= resume_at:
                resume_at = None
                fresh = autolrs_scheduler(case)
                fresh.resume(step, scheduler.learning_rates(step, step + 1)[0])
                requests = requests + [("resume", -1)]
                scheduler = fresh
            trace["steps"].append(int(step))
            trace["requests"].append(_plain_requests(requests))
            nxt = scheduler.next_boundary()
            trace["next_lr"].append(float(scheduler.learning_rates(step, step + 1)[0]) if step < scheduler.total_steps else None)
            trace["table"].append(_digest(scheduler.learning_rates(step, max(step, min(nxt, scheduler.total_steps)))))
            if chunks is None and step >= scheduler.total_steps:
                break
    trace["messages"] = messages + run_messages
    trace["summary"] = {
        "stages": [[s.index, s.start, list(s.learning_rates), list(s.forecasts), s.chosen, s.rolled_back] for s in scheduler.stages],
        "segments": [list(s) for s in scheduler.segments],
    }
    return trace


RECORDERS = {"autowu": record_autowu, "factor_search": record_factor_search, "autolrs": record_autolrs}

# Each case: a scheduler, its run and arguments, and the simulated network's stability
# limit. Among them: switches by the GP, a warmup that blows up (NaN), the cap, a
# roll-back and rescues, a resume, SGD's momentum correction, the reference's choice,
# a decay phase with reduce-on-plateau, steps_per_execution > 1.
CASES = {
    "autowu_default": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.05, seed=0, network=dict(blow_up=0.003)),
    "autowu_momentum": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.05, seed=1, velocity_momentum=0.9,
                            network=dict(blow_up=0.005)),
    "autowu_gp_minimum": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.2, seed=2, kwargs=dict(lr_choice="gp_minimum")),
    "autowu_blow_up": dict(scheduler="autowu", steps_per_epoch=40, epochs=10, limit=0.01, seed=3,
                           network=dict(blow_up=2.0, nan_at=50.0), kwargs=dict(patience=5)),
    "autowu_patience": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.05, seed=14, network=dict(blow_up=0.002),
                            kwargs=dict(patience=2, min_progress=0.0, min_rise=0.0)),
    "autowu_cap": dict(scheduler="autowu", steps_per_epoch=30, epochs=10, limit=10.0, seed=4, kwargs=dict(max_lr=0.1)),
    "autowu_rescue": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.05, seed=5,
                          network=dict(sharpen_at=400), velocity_momentum=0.9, kwargs=dict(min_progress=0.0, min_rise=0.0, handover_trial=0)),
    "autowu_resume": dict(scheduler="autowu", steps_per_epoch=50, epochs=20, limit=0.05, seed=6, resume_at=430),
    "autowu_epoch_tests": dict(scheduler="autowu", steps_per_epoch=25, epochs=40, limit=0.03, seed=7,
                               kwargs=dict(test_interval="epoch", flat_start_speedup=1, max_rescues=0, lr_choice="gp_minimum",
                                           min_progress=0.0, min_rise=0.0, handover_trial=0)),
    "autowu_decay_phase": dict(scheduler="autowu", steps_per_epoch=20, epochs=30, limit=0.05, seed=8,
                               kwargs=dict(immediate_cooldown=False, decay_phase_factor=0.5, decay_phase_stat="loss",
                                           cooldown_type="half_cosine", warmup_type="linear")),
    "autowu_chunks": dict(scheduler="autowu", steps_per_epoch=48, epochs=15, limit=0.05, seed=9, steps_per_execution=4,
                          kwargs=dict(test_interval=12)),
    "factor_search_default": dict(scheduler="factor_search", steps_per_epoch=20, epochs=15, learning_rate=0.001, limit=0.05, seed=10),
    "factor_search_blow_up": dict(scheduler="factor_search", steps_per_epoch=10, epochs=20, learning_rate=0.04, limit=0.05, seed=11,
                                  network=dict(blow_up=1.0, nan_at=30.0), resume_at=100,
                                  kwargs=dict(factors=(4.0, 2.0, 1.0, 0.5, 0.125), update_interval=5, normalization="zscore")),
    "autolrs_default": dict(scheduler="autolrs", total_steps=1200, learning_rate=0.01, limit=0.05, seed=12),
    "autolrs_diverging": dict(scheduler="autolrs", total_steps=1500, learning_rate=0.002, limit=0.003, seed=13, steps_per_execution=2,
                              network=dict(blow_up=0.5, nan_at=100.0, sharpen_at=600), resume_at=900, kwargs=dict(warmup_steps=40, forecast="reference")),
}


def record(name, chunks=None):
    case = CASES[name]
    return RECORDERS[case["scheduler"]](case, chunks)


def main():
    traces = {}
    for name in CASES:
        traces[name] = record(name)
        summary = json.dumps(traces[name]["summary"])[:300]
        print(f"{name}: {len(traces[name]['chunks'])} chunks, {len(traces[name]['messages'])} messages; {summary}", file=sys.stderr)
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with open(PATH, "w") as f:
        json.dump(traces, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
