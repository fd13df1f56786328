"""`python -m coderunner` and the `coderunner` console script."""

import sys

from ._cli import cli_logic


def main() -> None:
    sys.exit(cli_logic())


if __name__ == "__main__":
    main()
