"""lamina: AWS Lambda, real and visible, on one machine.

Subpackages, from the bottom up:

- ``lamina.runtime``: the function side. A Runtime API client that runs a Python
  handler the way Lambda's Python runtime does. Standard library only, so that it
  can be copied into any deployment package and start fast.
- ``lamina.emulator``: the Lambda side. Runtime API and Invoke API servers and the
  execution environments that run a function's ``bootstrap``.
- ``lamina.events``: sample events as AWS services shape them.
- ``lamina.cli``: the ``lamina`` command on top.
"""

__version__ = "0.1.0"
