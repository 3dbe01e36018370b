import sys

from goruntime.cmd.main import main

sys.exit(main())
