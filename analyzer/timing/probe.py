"""The machine's state: a fixed reference net timed with the session settings under test.

A small shared machine does not always run the same model at the same speed. On the 2-core
VM this project is developed on, onnxruntime's two intra-op threads run a model in one of
two states (ShuffleNetV2: 1.45 or 2.3 ms per run, MobileNetV2: 2.0 or 2.9 ms), each lasting
from seconds to minutes: the host sometimes runs the two virtual cores less promptly, and
every node, which hands its work between the two threads, waits longer. Large convolutions
hardly notice (a 3×3 64-channel conv stack moved 4 %); nets of many small nodes do. A
measurement is only comparable with a calibration made in the same state.

So calibration and measurement both time this *probe* net, ten blocks of a 1×1 and a
depthwise 3×3 convolution on 32 channels at 28² (twenty small nodes, ≈ 0.08 ms a run here,
≈ 0.2 ms in the slow state), next to what they measure. Calibration stores the probe time
of the state it measured in; ``cnnstat measure`` keeps the sessions whose probe time, just
before and just after, is within :data:`TOLERANCE` of it, and says how many it set aside.
The measured times themselves are never rescaled.

Times are milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

TOLERANCE = 0.15  # a probe time within ×(1 ± 0.15) of the reference is the same state
PROBE_SECONDS = 0.02  # each probe reading times the net for about this long
# after a reading, onnxruntime's idle pool threads spin a moment before they sleep: wait
# that out so they do not take a core from what is measured next
SETTLE_SECONDS = 0.01


BLOCKS, CHANNELS, SIZE = 10, 32, 28
# stored with a calibration's probe time; a profile whose probe was another net is not gated
DESCRIPTION = f"{BLOCKS} × (1×1 conv + depthwise 3×3 conv), {CHANNELS} channels, {SIZE}², batch 1"


def probe_net() -> Any:
    """The probe as an IR net: an input of 1×32×28×28, then ten blocks of a 1×1
    convolution and a depthwise 3×3 convolution (32 channels, padding 1), built as the
    calibration grid builds its points."""
    from analyzer.ir import Net
    from analyzer.timing.grid import conv_attrs, input_layer, make_layer

    layers = [input_layer((1, CHANNELS, SIZE, SIZE))]
    prev = layers[0].tops[0]
    for i in range(BLOCKS):
        layers += [make_layer(f"pw{i}", "Convolution", (prev,), (f"pw{i}",),
                              **conv_attrs(CHANNELS, 1, 1, 1)),
                   make_layer(f"dw{i}", "Convolution", (f"pw{i}",), (f"dw{i}",),
                              **conv_attrs(CHANNELS, 3, 1, CHANNELS))]
        prev = f"dw{i}"
    return Net("probe", "<cnnstat probe>", "probe", tuple(layers))


class Probe:
    """An onnxruntime session of :func:`probe_net`, ready to time."""

    def __init__(self, threads: int = 0) -> None:
        from analyzer.analysis import analyze
        from analyzer.timing.lower import export
        from analyzer.timing.runtime import feeds, require_ort, session_options

        ort = require_ort()
        ex = export(analyze(probe_net()))
        self.session = ort.InferenceSession(ex.model.SerializeToString(),
                                            session_options(ort, threads),
                                            providers=["CPUExecutionProvider"])
        self.feeds = feeds(self.session, ex.inputs, 0)
        self.session.run(None, self.feeds)  # warm-up

    def ms(self, seconds: float = PROBE_SECONDS) -> float:
        """Median wall time of a probe run (ms), over about ``seconds`` of runs (≥ 5)."""
        walls: list[float] = []
        start = time.perf_counter()
        while len(walls) < 5 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            self.session.run(None, self.feeds)
            walls.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(SETTLE_SECONDS)
        return statistics.median(walls)


def profile_reference(profile_data: Mapping[str, Any]) -> float:
    """The probe time (ms) a profile was calibrated at, or 0 when it has none for this
    probe net (a shipped GPU profile, or one calibrated with another probe)."""
    state = profile_data.get("probe")
    if not isinstance(state, Mapping) or state.get("net") != DESCRIPTION:
        return 0.0
    return float(state.get("ms", 0.0))


def reference(readings: list[float]) -> float:
    """The state a calibration measured in: the median of its probe readings, the state
    most of it ran in (points measured in another are measured again)."""
    return statistics.median(readings)


def same_state(reading: float, ref: float, tolerance: float = TOLERANCE) -> bool:
    """Whether a probe reading shows the machine in the reference state."""
    return ref > 0 and abs(reading / ref - 1.0) <= tolerance
