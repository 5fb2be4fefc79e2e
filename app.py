"""Start the Verbatim chat: `python app.py [--host H] [--port P] [--share] [--auth user:password] ...`.

The server itself is `rag.serve.server`; `python app.py --help` lists its options.
"""

import sys

from rag.serve.server import main

if __name__ == "__main__":
    sys.exit(main())
