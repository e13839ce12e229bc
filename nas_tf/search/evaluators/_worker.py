"""A child-training worker process of :class:`~nas_tf.search.evaluators.ParallelEvaluator`.

Started as ``python -m nas_tf.search.evaluators._worker FD SLOT`` with its devices
already in its environment (``CUDA_VISIBLE_DEVICES``); ``FD`` is its end of a
socket pair to the search process. It reads the pickled trainer recipe
(e.g. a :class:`~nas_tf.tasks.TrainerSpec`), builds the trainer (GPU memory
growth on; a ``MirroredStrategy`` when it sees several GPUs), answers
``("ready", pid)`` (or ``("fatal", reason)``), then trains every child it is
sent and answers each with its result. It ends when the search says stop, when
the socket closes, or -- on Linux -- when the search process dies.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import sys


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(fd: int) -> None:
    from multiprocessing.connection import Connection

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the search, which stops the workers
    conn = Connection(fd)
    try:
        spec = pickle.loads(conn.recv_bytes())
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else None
        from nas_tf.search.evaluator import ChildRequest, InProcessEvaluator
        from nas_tf.spaces.arch import arch_from_dict

        evaluator = InProcessEvaluator(spec.build(strategy=strategy))
    except BaseException as e:  # noqa: BLE001 - reported to the search process
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        fields = message[1]
        request = ChildRequest(fields["index"], fields["step"], arch_from_dict(fields["arch"]), fields["seed"])
        (result,) = list(evaluator.evaluate([request]))
        try:
            conn.send(("result", dataclasses.asdict(result)))
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    main(int(sys.argv[1]))
