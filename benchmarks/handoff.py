"""Agent handoff benchmark, text vs latent; same as `avp-suite bench handoff`. See --help."""

import sys

from avp_suite.bench.handoff import main

if __name__ == "__main__":
    main(sys.argv[1:])
