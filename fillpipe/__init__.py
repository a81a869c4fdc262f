"""The composition root: the `fillpipe` command, the embedded stack and the demo.

The one place that wires `pipeline`, `workers`, `webhook_receiver` and `emulator` together.
"""
