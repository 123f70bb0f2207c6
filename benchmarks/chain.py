"""Same as `avp-suite bench chain`. See --help."""

import sys

from avp_suite.bench.chain import main

if __name__ == "__main__":
    main(sys.argv[1:])
