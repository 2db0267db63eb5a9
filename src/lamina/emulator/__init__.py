"""The Lambda side: a local Lambda service.

``template`` reads functions out of a SAM template (``document`` parses its YAML,
``constraints`` knows what Lambda accepts); ``service`` keeps their
execution environments (``environment``), each a ``bootstrap`` process talking to
its own Runtime API (``runtime_api``); ``invoke_api`` puts the service behind the
Invoke API that boto3 and the AWS CLI speak; ``server`` runs it all on a port.
"""
