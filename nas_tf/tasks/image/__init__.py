"""The image-classification task: child trainer, supernet task, training loop and final training.

Children are image classifiers built by the arch's registered builder
(:func:`nas_tf.models.build_image_model`: ``nas_cnn``, ``nasnet``,
``enas_macro``, ...), trained with :func:`~nas_tf.tasks.image.train.train_classifier`
and rewarded with their validation accuracy.
"""

from nas_tf.data.images import IMAGE_DATASETS, load_image_data
from nas_tf.models.registry import image_spaces
from nas_tf.tasks.image.child import ImageChildConfig, ImageChildTrainer, accuracy_reward
from nas_tf.tasks.image.final import FinalImageConfig, train_final_image
from nas_tf.tasks.image.supernet import ImageSupernetTask, SharedTrainingConfig
from nas_tf.tasks.image.train import TrainResult, evaluate_classifier, train_classifier
from nas_tf.tasks.registry import Task, register_task

TASK = register_task(
    Task(
        name="image",
        datasets=IMAGE_DATASETS,
        load_data=load_image_data,
        spaces=image_spaces,
        child_trainer=ImageChildTrainer,
        child_config=ImageChildConfig,
        train_final=train_final_image,
        final_config=FinalImageConfig,
        metrics=("test_accuracy", "val_accuracy"),
    )
)

__all__ = [
    "FinalImageConfig",
    "ImageChildConfig",
    "ImageChildTrainer",
    "ImageSupernetTask",
    "SharedTrainingConfig",
    "TASK",
    "TrainResult",
    "accuracy_reward",
    "evaluate_classifier",
    "train_classifier",
    "train_final_image",
]
