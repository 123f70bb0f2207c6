"""Same as `avp-suite bench tools`. See --help."""

import sys

from avp_suite.bench.tools import main

if __name__ == "__main__":
    main(sys.argv[1:])
