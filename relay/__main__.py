from relay.cli import main

# Guarded: a child process of multiprocessing (the playground's sandbox) imports the main
# module again, under another name, and must not run the command line a second time.
if __name__ == "__main__":
    main()
