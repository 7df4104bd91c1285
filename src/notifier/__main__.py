from notifier.entrypoints.cli import main

raise SystemExit(main())
