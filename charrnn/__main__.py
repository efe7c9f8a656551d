"""`python -m charrnn` and the `charrnn` command (pyproject's entry point: run)."""
import sys


def run():
    """Import the CLI (numpy, click: a few hundred ms) and run it; a Ctrl-C that lands during
    the imports is the same one line and exit 130 as one that lands later, not a traceback."""
    import charrnn
    charrnn._one_blas_thread()  # this process's own: before the CLI's imports load numpy
    try:
        from charrnn.cli import main, streams
    except KeyboardInterrupt:
        sys.stderr.write("charrnn: interrupted\n")
        sys.exit(130)
    streams.install()  # closed standard streams mended, stderr never fatal (cli/streams.py)
    main()


if __name__ == "__main__":
    run()
