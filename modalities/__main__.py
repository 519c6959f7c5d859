from modalities.cli.main import main

raise SystemExit(main())
