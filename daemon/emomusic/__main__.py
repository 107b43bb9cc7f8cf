from emomusic.cli.main import main

raise SystemExit(main())
