from rag.serve.cli import main

raise SystemExit(main())
