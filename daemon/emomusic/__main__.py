from emomusic.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process (the library scan) imports it
    raise SystemExit(main())
