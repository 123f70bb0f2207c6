"""Same as `avp-suite bench kvcomm`. See --help."""

import sys

from avp_suite.bench.kvcomm import main

if __name__ == "__main__":
    main(sys.argv[1:])
