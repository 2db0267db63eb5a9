"""Entry point: ``python -m lamina.runtime`` (the body of a Python ``bootstrap``)."""

from lamina.runtime.loop import main

if __name__ == "__main__":
    main()
