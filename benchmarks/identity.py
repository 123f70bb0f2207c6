"""Identity fingerprint benchmark; same as `avp-suite bench identity`. See --help."""

import sys

from avp_suite.bench.identity import main

if __name__ == "__main__":
    main(sys.argv[1:])
