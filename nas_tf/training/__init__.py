"""Training loops shared by child evaluation and final training."""

from nas_tf.training.classifier import ChildDiverged, TrainResult, evaluate_classifier, make_sgd, train_classifier

__all__ = ["ChildDiverged", "TrainResult", "evaluate_classifier", "make_sgd", "train_classifier"]
