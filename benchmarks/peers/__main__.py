"""`python -m benchmarks.peers [flags]`: see the package doc and `--help`."""

from benchmarks.peers.run import main

main()
