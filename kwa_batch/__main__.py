"""``python -m kwa_batch``: the same as the ``kwa-batch`` command."""

from kwa_batch.cli import main

if __name__ == "__main__":
    main()
