"""``python -m vidrec`` (and ``accelerate launch -m vidrec train ...``)."""

from vidrec.cli import main

if __name__ == "__main__":
    main()
