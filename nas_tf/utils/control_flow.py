"""``tf.switch_case`` with the choice of how TensorFlow runs it.

Inside a ``tf.function``, ``tf.switch_case`` builds a ``Case`` op that
TensorFlow *lowers* before running it: every branch is inlined into the
calling graph behind ``Switch``/``Merge`` ops. Lowered, the branches' ops are
part of that graph, so its graph rewrites apply to them -- on x86 CPUs the
oneDNN rewrite that swaps convolutions, batch norms and pools for oneDNN
kernels -- and the executor visits every op of every branch on each run
(those of the branches not taken as dead tensors).

Not lowered, the ``Case`` op runs the chosen branch as a function of its own:
only that branch's ops are visited, and TensorFlow (2.18 to 2.21) instantiates
the branch function without the oneDNN rewrite, so its ops run TensorFlow's
own (Eigen) kernels. On tiny tensors those are faster than oneDNN's, whose
fixed cost per call dominates there; on larger ones oneDNN's are faster
(``scripts/bench_enas.py``: the ENAS micro supernet on 8x8 digits and on 32x32
images, docs/benchmarks.md).

TensorFlow has no public switch for this, so the one private call that sets
it is here; should it move, :func:`switch_case` falls back to the default
(lowered) ``tf.switch_case``, which computes the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

try:
    from tensorflow.python.ops import cond_v2 as _cond_v2
except ImportError:  # pragma: no cover - a TensorFlow that moved its private module
    _cond_v2 = None

__all__ = ["lowering_choice_available", "switch_case"]


def lowering_choice_available() -> bool:
    """Whether :func:`switch_case` can keep a ``Case`` op from being lowered in this TensorFlow."""
    return _cond_v2 is not None and hasattr(_cond_v2, "indexed_case")


def switch_case(index: tf.Tensor, branches: Sequence[Callable], *, lower: bool = True, name: str = "switch_case"):
    """``tf.switch_case(index, branches)``, lowered into the calling graph or not.

    Args:
        index: int32 scalar tensor, the branch to run (out of range: the last
            branch, as ``tf.switch_case``).
        branches: callables taking no arguments, each returning the same
            structure of tensors.
        lower: ``True`` (TensorFlow's default): the branches are inlined
            behind ``Switch``/``Merge`` ops and get the calling graph's
            rewrites (oneDNN kernels on x86). ``False``: the chosen branch
            runs as a function of its own (no dead branches to visit, Eigen
            kernels). Eager execution runs the chosen branch either way.
        name: the op's name scope.

    Returns:
        The outputs of the chosen branch.

    Example:

    ```python
    @tf.function
    def f(i, x):
        return switch_case(i, [lambda: x + 1.0, lambda: x * 2.0], lower=False)

    f(tf.constant(1), tf.constant(3.0))  # 6.0
    ```
    """
    if lower or not tf.inside_function() or not lowering_choice_available():
        return tf.switch_case(index, list(branches), name=name)
    # The Case op itself runs the last branch for an out-of-range index, as tf.switch_case does.
    return _cond_v2.indexed_case(tf.convert_to_tensor(index, tf.int32), list(branches), name=name, lower_using_switch_merge=False)
