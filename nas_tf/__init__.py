"""nas_tf: reinforcement-learning neural architecture search for TensorFlow 2 / Keras 3.

NAS (Zoph & Le 2017), NASNet (Zoph et al. 2018) and ENAS (Pham et al. 2018):
search spaces as data, one LSTM controller, one search loop, Keras children.

Importing ``nas_tf`` is cheap: TensorFlow is imported only by the submodules
that need it (controller, layers, models, data, search).
"""

from nas_tf.spaces import Arch, ArchError, load_arch, make_space

__version__ = "0.1.0"

__all__ = ["Arch", "ArchError", "load_arch", "make_space", "__version__"]
