"""N-agent chain through each installed framework, text vs latent; `avp-suite bench frameworks`."""

import sys

from avp_suite.bench.frameworks import main

if __name__ == "__main__":
    main(sys.argv[1:])
