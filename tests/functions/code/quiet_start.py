"""A handler that never logs: what did its environment's cold start import?"""

import sys


def handler(event, context):
    return {"logging_loaded": "logging" in sys.modules}
