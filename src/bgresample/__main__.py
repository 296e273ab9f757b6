from bgresample.cli import main

raise SystemExit(main())
