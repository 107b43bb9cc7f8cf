from emomusic.cli import main

raise SystemExit(main())
