"""Exporting a trained run to other runtimes: ``mmpost export RUN --format onnx``."""
