import sys

from swarmlearn.cli import main

# Guarded: the store's writer process is started with "spawn", which imports the parent's main
# module (as __mp_main__) and must not run the command line again.
if __name__ == "__main__":
    sys.exit(main())
