"""Small helpers shared by the whole package (no TensorFlow import here)."""

from nas_tf.utils.io import append_jsonl, atomic_write_json, atomic_write_text, format_json, read_jsonl

__all__ = ["append_jsonl", "atomic_write_json", "atomic_write_text", "format_json", "read_jsonl"]
