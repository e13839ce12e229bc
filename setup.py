"""nas_tf: reinforcement-learning neural architecture search for TensorFlow 2 / Keras 3."""

import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csrc import build as native  # noqa: E402  (one build mechanism for pip and for first use)

# The TensorFlow distribution to require. TensorFlow ships as several
# distributions that all provide the ``tensorflow`` module (tensorflow, the
# CPU-only tensorflow-cpu, ...). Requiring ``tensorflow`` where tensorflow-cpu is
# installed would pull the 570 MB CUDA wheel beside it, so an installed
# variant is kept -- looked up in the environment being installed into, which
# pip's build isolation hides from this script (csrc/build.py);
# NAS_TF_TENSORFLOW overrides the choice.
TF_MIN = "2.18"
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly", "tf-nightly-cpu")


def tensorflow_requirement() -> str:
    dist = os.environ.get("NAS_TF_TENSORFLOW") or native.installed_distribution(TF_DISTRIBUTIONS) or "tensorflow"
    return f"{dist}>={TF_MIN}"


class NativeExtension(Extension):
    """A library compiled by csrc/build.py: ``kind`` is "op" (TensorFlow op library) or "pybind"."""

    def __init__(self, name: str, kind: str):
        super().__init__(name, sources=[], optional=True)
        self.kind = kind


def native_extensions() -> list:
    if os.environ.get("NAS_TF_BUILD_OPS", "1") == "0":
        return []
    return [NativeExtension("nas_tf.ops._nas_tf_ops", "op"), NativeExtension("nas_tf._kernels", "pybind")]


class BuildNative(build_ext):
    """Builds the op library against the TensorFlow of the environment (if it has one) and the pybind11 module.

    Where the build sees no TensorFlow (pip's build isolation on a fresh
    environment, ``pip wheel``) the op library is left out: nas_tf builds it
    on first use against the TensorFlow actually imported (nas_tf/_native.py).
    A failed build never fails the installation.
    """

    def build_extension(self, ext):
        if not isinstance(ext, NativeExtension):
            return super().build_extension(ext)
        path = self.get_ext_fullpath(ext.name)
        try:
            if ext.kind == "op":
                tf = native.tensorflow_info()
                if tf is None:
                    print("nas_tf build: no TensorFlow visible to the build (pip's build isolation, or not installed "
                          "yet): the op library is built on first use against the TensorFlow you import", flush=True)
                    return
                cuda = native.cuda_wanted(tf)
                native.build_op_library(path, tf, cuda=cuda)
            else:
                import pybind11

                native.build_pybind_module(path, pybind_include=pybind11.get_include(), cuda=native.cuda_wanted(None))
            print(f"nas_tf build: wrote {path}", flush=True)
        except (native.BuildError, ImportError, OSError) as e:
            print(f"WARNING nas_tf build: {ext.name} not built ({e}); nas_tf builds it on first use if it can",
                  file=sys.stderr, flush=True)


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
    packages=find_packages(include=["nas_tf", "nas_tf.*"]) + ["nas_tf._csrc"],
    # The C++/CUDA sources travel with the package (as nas_tf/_csrc), so a
    # wheel built without TensorFlow can build its op library on first use.
    package_dir={"nas_tf._csrc": "csrc"},
    package_data={"nas_tf._csrc": ["*.py", "kernels/*.cc", "kernels/*.h", "kernels/*.cu", "tf/*.cc", "python/*.cc"]},
    # C++/CUDA kernels: built by `pip install` when a compiler is there (the op
    # library only when the build sees TensorFlow), else on first use.
    ext_modules=native_extensions(),
    cmdclass={"build_ext": BuildNative},
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
        # pytest-xdist: the suite runs in two processes (pyproject.toml), which on 2 cores nearly halves it
        # (tracing, process start-ups and graph building are single-threaded).
        "test": ["pytest>=7", "pytest-xdist>=3", "jax[cpu]", "hypothesis>=6"],
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
