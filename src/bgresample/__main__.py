from bgresample.cli import entry

entry()
