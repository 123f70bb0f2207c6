"""Codec round-trip benchmark; same as `avp-suite bench codec`. See --help."""

import sys

from avp_suite.bench.codec import main

if __name__ == "__main__":
    main(sys.argv[1:])
