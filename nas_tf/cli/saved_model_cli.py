"""``nas-tf-saved-model-cli``: TensorFlow's ``saved_model_cli`` with nas_tf's ops loaded.

SavedModels exported with ``keep_custom_ops=True`` contain ``NasTf*`` ops that
the stock ``saved_model_cli run`` cannot execute (``Op type not registered``)
and whose concrete functions ``show --all`` cannot list. This wrapper loads the
op library (and registers the gradients) first, then runs the stock command
with the same arguments:

    nas-tf-saved-model-cli show --dir runs/final/saved_model --all
    nas-tf-saved-model-cli run --dir DIR --tag_set serve \\
        --signature_def serving_default --inputs "x=images.npy"

(also ``python -m nas_tf.cli.saved_model_cli ...``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0]] + list(argv)
    import nas_tf.ops

    if nas_tf.ops.load_library(quiet=True) is None:
        print(f"nas-tf-saved-model-cli: nas_tf custom ops not loaded ({nas_tf.ops.load_error()})", file=sys.stderr)
    from tensorflow.python.tools import saved_model_cli

    result = saved_model_cli.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
