"""The command line of the scripts, in three parts.

* :mod:`nas_tf.cli.flags` -- the flag definitions, grouped by topic;
* :mod:`nas_tf.cli.configs` -- per-space defaults, the flags that apply to
  each choice, and the configs built from the dataclasses;
* :mod:`nas_tf.cli.drivers` -- how each script's run goes, and its one-line errors.
"""
