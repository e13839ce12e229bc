"""nas_tf.utils.progress: the start line and the duration line of something long."""

import io
import re
import time

import pytest

from nas_tf.utils.progress import AnnouncedFirstCall, timed


def test_timed_prints_what_and_how_long():
    out = io.StringIO()
    with timed("tracing the shared-weights step", out) as record:
        time.sleep(0.05)
    lines = out.getvalue().splitlines()
    assert lines[0] == "nas_tf: tracing the shared-weights step ..."
    m = re.fullmatch(r"nas_tf: tracing the shared-weights step: done in (\d+\.\d) s", lines[1])
    assert m and abs(float(m.group(1)) - record["seconds"]) < 0.051 and record["seconds"] >= 0.05


def test_timed_reports_a_failure_and_reraises():
    out = io.StringIO()
    with pytest.raises(KeyError), timed("building x", out):
        raise KeyError("boom")
    assert re.search(r"^nas_tf: building x: failed after \d+\.\d s$", out.getvalue(), re.MULTILINE)
    quiet = io.StringIO()
    with timed("building x", quiet, enabled=False) as record:
        pass
    assert quiet.getvalue() == "" and record["seconds"] is not None


def test_only_the_first_call_is_announced():
    out = io.StringIO()
    calls = []

    def step(x):
        calls.append(x)
        return 2 * x

    step.experimental_get_tracing_count = lambda: 1
    wrapped = AnnouncedFirstCall(step, "tracing the step", out)
    assert [wrapped(1), wrapped(2), wrapped(3)] == [2, 4, 6] and calls == [1, 2, 3]
    assert out.getvalue().count("nas_tf: tracing the step") == 2  # start and end, once
    assert wrapped.seconds is not None and wrapped.experimental_get_tracing_count() == 1


def test_a_tf_function_keeps_its_attributes_when_announced():
    import tensorflow as tf

    out = io.StringIO()
    step = AnnouncedFirstCall(tf.function(lambda x: 2 * x), "tracing the shared-weights step", out)
    assert float(step(tf.constant(1.0))) == 2.0 and float(step(tf.constant(3.0))) == 6.0
    assert step.experimental_get_tracing_count() == 1
    assert step.get_concrete_function(tf.TensorSpec([], tf.float32)).structured_outputs.shape == []
    lines = out.getvalue().splitlines()
    assert lines[0] == "nas_tf: tracing the shared-weights step ..." and len(lines) == 2
