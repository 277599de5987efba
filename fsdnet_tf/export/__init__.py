from fsdnet_tf.export.saved_model import ExportError, ServingModule, export_run, serialize_examples

__all__ = ["ExportError", "ServingModule", "export_run", "serialize_examples"]
