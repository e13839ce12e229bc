"""Export of discovered networks (SavedModel)."""

from nas_tf.export.saved_model import export_language_model, export_saved_model

__all__ = ["export_language_model", "export_saved_model"]
