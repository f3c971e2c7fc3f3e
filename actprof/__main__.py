from actprof.cli import main

main()
