"""``python -m dreambench``: the same command line as the ``dreambench`` console script."""

from .cli import main

if __name__ == "__main__":
    main()
