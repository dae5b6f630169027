from fswl.cli.main import main

raise SystemExit(main())
