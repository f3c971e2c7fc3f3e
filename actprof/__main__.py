from actprof.cli import main

if __name__ == "__main__":  # a spawned child (int8 quantization) imports this module: it must not run the CLI
    main()
