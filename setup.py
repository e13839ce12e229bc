"""nas_tf: reinforcement-learning neural architecture search for TensorFlow 2 / Keras 3."""

import importlib.metadata
import os
import sys

from setuptools import find_packages, setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csrc.build import BuildExt, extensions  # noqa: E402  (the op library and the pybind11 module)

# The TensorFlow distribution to require. TensorFlow ships as several
# distributions that all provide the ``tensorflow`` module (tensorflow, the
# CPU-only tensorflow-cpu, ...). Requiring ``tensorflow`` where tensorflow-cpu is
# installed would pull the 570 MB CUDA wheel beside it, so an installed
# variant is kept; NAS_TF_TENSORFLOW overrides the choice (e.g. with build
# isolation, where this script cannot see the target environment).
TF_MIN = "2.18"


def tensorflow_requirement() -> str:
    forced = os.environ.get("NAS_TF_TENSORFLOW")
    if forced:
        return f"{forced}>={TF_MIN}"
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly", "tf-nightly-cpu"):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return f"{dist}>={TF_MIN}"
    return f"tensorflow>={TF_MIN}"


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="nas_tf",
    version="0.1.0",
    description="Reinforcement-learning neural architecture search (NAS, NASNet, ENAS) for TensorFlow 2 / Keras 3",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nas_tf", "nas_tf.*"]),
    # C++/CUDA kernels: built by `pip install` when a compiler is there; without
    # them nas_tf uses its pure-TensorFlow fallbacks (csrc/build.py).
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExt},
    entry_points={"console_scripts": ["nas-tf-saved-model-cli=nas_tf.cli.saved_model_cli:main"]},
    install_requires=[
        tensorflow_requirement(),
        "keras>=3.0",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets downloads through etils, which imports
        # importlib_resources without declaring it.
        "importlib_resources",
        "numpy",
        "absl-py",
        "pybind11>=2.12",
        # TF >= 2.20 no longer depends on TensorBoard; tf.summary needs it.
        "tensorboard",
        # Ships the real 8x8 handwritten digits used as the embedded dataset.
        "scikit-learn",
        # Arch pictures (nas_tf.viz): the Python interface to Graphviz; the `dot`
        # program itself comes from the OS (apt-get / conda install graphviz).
        "graphviz",
        # The reward plots of the search report (scripts/report.py).
        "matplotlib",
    ],
    extras_require={
        # jax: tests/test_nas_cell.py runs NASCell on the JAX backend too.
        # hypothesis: tests/test_arch_fuzz.py generates malformed arch documents for every space.
        "test": ["pytest>=7", "jax[cpu]", "hypothesis>=6"],
        "jax": ["jax[cpu]"],
        # Tabular benchmarks (nas_tf.benchmarks, scripts/bench_nb201.py): the
        # NAS-Bench-201 records of analog-nasbench (its data file is read with a
        # restricted unpickler, its code never runs) and the plots.
        "benchmarks": ["analog-nasbench==0.1.3", "matplotlib"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "License :: OSI Approved :: Apache Software License",
    ],
)
